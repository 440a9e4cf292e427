"""segment-anything's automatic mask generator as a proposer, on a SAM checkpoint the user gives.

SAM (Kirillov et al., ICCV 2023) prompts its mask decoder with a grid of points and keeps the
masks it is confident in and that are stable under threshold changes, then removes duplicates
(``SamAutomaticMaskGenerator``; PCC runs it in this mode). The checkpoint is read without
unpickling (``torch.load(weights_only=True)``, or a ``.safetensors`` file) and its kind
(ViT-B/L/H) is found from its weights; anything else is refused with a
:class:`~corr_core.errors.CheckpointError` that says what was found.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.errors import CheckpointError, ConfigError
from corr_core.proposals import register_proposer
from corr_core.proposals.base import Proposals, check_image

#: SAM image-encoder width -> segment-anything registry name.
SAM_KINDS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}
_EMBED_KEY = "image_encoder.patch_embed.proj.weight"


def load_sam_state(path: str | Path) -> dict[str, Any]:
    """The state dict of a SAM checkpoint (``.pth``/``.pt`` tensors-only pickle, or ``.safetensors``).

    Raises:
        CheckpointError: missing, unreadable, or holding more than tensors (never unpickled).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: not a readable SAM checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "give the .pth file of segment-anything (vit_b, vit_l or vit_h)"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a SAM state dict")
    return state


def sam_kind(state: dict[str, Any], source: str) -> str:
    """``vit_b``/``vit_l``/``vit_h`` from the weights of a SAM state dict.

    Raises:
        CheckpointError: the state dict is not segment-anything's.
    """
    weight = state.get(_EMBED_KEY)
    if weight is None or getattr(weight, "ndim", 0) != 4:
        found = sorted(state)[:3]
        raise CheckpointError(
            f"{source}: not a segment-anything checkpoint (no {_EMBED_KEY!r}; its first keys are {found})"
        )
    width = int(weight.shape[0])
    if width not in SAM_KINDS:
        raise CheckpointError(
            f"{source}: SAM image encoder of width {width} is none of {sorted(SAM_KINDS)} (vit_b/l/h)"
        )
    return SAM_KINDS[width]


def build_sam(checkpoint: str | Path, device: str = "cpu") -> Any:
    """A segment-anything ``Sam`` model with the weights of ``checkpoint`` (kind found from them).

    Raises:
        CheckpointError: see :func:`load_sam_state`; weights that do not fit their kind.
    """
    from segment_anything import sam_model_registry

    state = load_sam_state(checkpoint)
    kind = sam_kind(state, str(checkpoint))
    model = sam_model_registry[kind](checkpoint=None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint}: weights do not fit SAM {kind} ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval()


class SamProposer:
    """SAM automatic masks as :class:`~corr_core.proposals.base.Proposals` (score: predicted IoU).

    Args:
        checkpoint: a segment-anything checkpoint (vit_b/l/h), or None with ``model``.
        model: an already built ``segment_anything.modeling.Sam`` (tests build a tiny one).
        device: torch device.
        points_per_side: prompt grid density (SAM: 32).
        pred_iou_thresh, stability_score_thresh: SAM's filters (0.88, 0.95).
        min_area, max_area: kept mask areas as fractions of the image.
        max_proposals: most proposals returned (best predicted IoU first).
    """

    name = "sam"

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        model: Any = None,
        device: str = "cpu",
        points_per_side: int = 32,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        min_area: float = 2.5e-4,
        max_area: float = 0.5,
        max_proposals: int = 64,
    ) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        if (checkpoint is None) == (model is None):
            raise ConfigError("SamProposer: give exactly one of checkpoint (a SAM .pth path) and model")
        self.model = build_sam(checkpoint, device) if model is None else model.to(device).eval()
        self.generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=int(points_per_side),
            pred_iou_thresh=float(pred_iou_thresh),
            stability_score_thresh=float(stability_score_thresh),
        )
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.max_proposals = int(max_proposals)

    def propose(self, rgb: np.ndarray, depth: np.ndarray | None = None, labels: np.ndarray | None = None) -> Proposals:
        """SAM's automatic masks of an ``(H, W, 3) uint8`` image (``depth`` and ``labels`` unused)."""
        import torch

        check_image(rgb)
        h, w = rgb.shape[:2]
        with torch.inference_mode():
            records = self.generator.generate(np.ascontiguousarray(rgb))
        lo, hi = self.min_area * h * w, self.max_area * h * w
        kept = [r for r in records if lo <= int(r["area"]) <= hi]
        kept.sort(key=lambda r: -float(r["predicted_iou"]))
        kept = kept[: self.max_proposals]
        if not kept:
            return Proposals.empty((h, w))
        masks = np.stack([np.asarray(r["segmentation"], bool) for r in kept])
        return Proposals(masks, np.asarray([float(r["predicted_iou"]) for r in kept], np.float32))


@register_proposer("sam")
def sam_proposer(**kwargs: Any) -> SamProposer:
    """segment-anything's automatic mask generator (:class:`SamProposer`)."""
    return SamProposer(**kwargs)
