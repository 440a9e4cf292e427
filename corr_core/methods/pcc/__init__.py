"""PCC, Predictive Cycle Consistency (seed 000): self-supervised cross-view object correspondence.

Stages (each a module here; ``corr pcc pretrain|pseudolabel|train|iterate`` runs them):

1. :mod:`.colorize` — cross-view colourisation pretraining of an encoder E and a cross-attention
   decoder D (:mod:`.model`, :mod:`.encoder`, :mod:`.decoder`; loss in :mod:`.loss_colour`);
2. :mod:`.heatmaps` + :mod:`.pseudolabel` — recolour each object proposal of one view, see where
   the other view's predicted colours change, keep the proposal pairs that agree both ways;
3. :mod:`.correspond` — train a model that maps (view 1, mask, view 2) to the mask in view 2 and
   its existence (loss in :mod:`.loss_mask`) on those pseudo-labels;
4. :mod:`.iterate` — the trained model makes the next heatmaps (IoU similarity), again cycle
   filtered, and is trained again.

Data: :mod:`.scenes` (simulated episodes, DAVIS, rosbag2 recordings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corr_core.errors import CheckpointError
from corr_core.methods.pcc.model import PCC_MODELS, PCCNet, build_pcc_model


def load_pcc_model(checkpoint: str | Path, device: str = "cpu") -> tuple[PCCNet, dict[str, Any]]:
    """A PCC network from a corr checkpoint written by a PCC stage (``model.safetensors``).

    Raises:
        CheckpointError: missing or foreign checkpoint, or one of another architecture.
    """
    from corr_core.io.checkpoint import load_checkpoint, load_module_state

    tensors, meta = load_checkpoint(checkpoint)
    arch = meta.get("arch")
    if arch not in PCC_MODELS:
        raise CheckpointError(
            f"{checkpoint}: not a PCC checkpoint (architecture {arch!r}, method {meta.get('method')!r}); "
            f"PCC architectures: {sorted(PCC_MODELS)}"
        )
    model = build_pcc_model(arch)
    load_module_state(model, tensors, "backbone.", str(checkpoint))
    return model.to(device).eval(), meta


__all__ = ["PCC_MODELS", "PCCNet", "build_pcc_model", "load_pcc_model"]
