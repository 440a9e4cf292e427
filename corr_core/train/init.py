"""Starting a method from an earlier checkpoint (fine-tuning, or the next stage of a method)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger("corr.train")


def init_from_checkpoint(method: torch.nn.Module, checkpoint: str | Path) -> None:
    """Starts ``method`` from the feature network of a corr checkpoint (fine-tuning, e.g. the
    shipped checkpoint on a robot's own bags, or a network of the architecture it extends);
    heads start fresh, targets copy the online nets.

    Raises:
        CheckpointError: missing, foreign or mismatching checkpoint (other architecture), or a
            training state (a run's ``last.*``) instead of a feature network.
    """
    from corr_core.errors import CheckpointError
    from corr_core.io.checkpoint import check_feature_checkpoint, load_checkpoint, load_module_state

    tensors, meta = load_checkpoint(checkpoint)
    check_feature_checkpoint(meta, checkpoint)
    arch = getattr(method, "arch", None)
    net = method.feature_model()
    # a network that extends another (``base_arch``) starts from its checkpoints; the layers it
    # adds (``extension_layers``) keep their initial values
    base = getattr(net, "base_arch", None)
    if meta.get("arch") != arch and (base is None or meta.get("arch") != base):
        raise CheckpointError(f"{checkpoint}: architecture {meta.get('arch')!r} cannot initialise a {arch!r} model")
    extension = tuple(getattr(net, "extension_layers", ())) if meta.get("arch") != arch else ()
    load_module_state(net, tensors, "backbone.", str(checkpoint), allow_missing=extension)
    if hasattr(method, "sync_target"):
        method.sync_target()
    log.info("initialised %s from %s (%s)", arch, checkpoint, meta.get("method", "?"))
