"""Label propagation with the protocol of CRW (Jabri et al., NeurIPS 2020), as used by SFC.

SFC (seed 004, appendix 0.A.2) evaluates with "the official CRW evaluation code"
(``ajabri/videowalk``, ``code/test.py`` + ``code/utils/test_utils.py``). One propagation step, for a
target frame with L2-normalised stride-8 features ``q`` and a context of ``N`` frames:

1. Affinity ``A[i, j] = <q_i, k_j>`` between every target position ``i`` and every context
   position ``j`` (all context frames flattened together).
2. Radius restriction. CRW adds ``-1e10`` to ``A`` where the feature-grid Euclidean distance between
   ``i`` and ``j`` is *not strictly smaller* than the radius, and it does so **only for the
   short-term frames** (``A[0, :, len(long_mem):] += mask``): the first (reference) frame, its
   "long-term memory", is matched globally. We do the same by default
   (``PropagationConfig.restrict_reference=False``); masked entries get ``-inf`` here, which gives
   exactly the same weights (zero) and lets the local implementation skip them.
3. ``A / temperature``; keep the top-k entries of each target row over the *union* of all context
   frames; softmax over the kept ones (computed in float32 or wider). Dividing by a positive
   temperature does not change the order, so we divide only the k kept values.
4. Target soft labels = softmax-weighted sum of the kept context positions' soft labels.

The radius is measured in feature cells (CRW builds its mask on the feature grid). CRW's
``test.py`` defaults the temperature to 0.07, but its README's DAVIS command (the one the numbers
come from) passes ``--temperature 0.05``; we default to 0.05.

Two implementations that agree to float rounding:

* :func:`propagate_dense` (reference / baseline): materialises the ``hw x N*hw`` affinity.
* :func:`propagate_local` (default): the frames are laid out once, frames innermost and channels
  last (:class:`~corr_core.propagation.memory.FrameMemory`); radius-restricted frames are matched
  tile by tile, each ``t x t`` tile of query positions against the clipped ``(t+2R)^2`` patch that
  covers all their windows, read by one batched matmul without copying it. The exact top-k is
  found from the per-cell maxima over the frames (top-k cells, then top-k of their entries), so
  cells outside the radius are excluded before any ranking and nothing outside the image is ever
  scored. Unrestricted frames (the reference, by default) are matched against the whole map in
  blocks bounded by ``PropagationConfig.max_block_elements``. No dense ``hw x N*hw`` affinity is
  built; memory is the layout (one copy of the context) plus one tile's scores.
  :func:`propagate_memories` is the same search on memories kept between frames (the tracker).

Long-term memory (MER/MAST): the reference set may hold more frames than the first one
(``PropagationConfig.long_term_every`` / ``long_term_size``) and be matched within its own radius
(``long_term_radius``); see :class:`~corr_core.propagation.tracker.Tracker`.

Functions here are pure and device-agnostic: they run where their input tensors live.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from corr_core.errors import ShapeMismatchError
from corr_core.propagation.config import METHODS, PropagationConfig  # noqa: F401 (re-exported)
from corr_core.propagation.memory import FrameMemory, auto_tile_size, covers_map, max_dist2

__all__ = [
    "PropagationConfig",
    "auto_tile_size",
    "downsample_labels",
    "propagate_dense",
    "propagate_local",
    "propagate_memories",
    "propagate_step",
    "radius_mask",
    "reference_radius",
    "upsample_labels",
]

# --------------------------------------------------------------------------------------------
# Label maps at feature resolution
# --------------------------------------------------------------------------------------------


def downsample_labels(onehot: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resizes per-object label maps to feature resolution, as CRW does.

    CRW resizes the one-hot maps with ``cv2.resize(..., INTER_LINEAR)``: bilinear with half-pixel
    centres and no anti-aliasing, i.e. ``F.interpolate(mode="bilinear", align_corners=False)``.

    Args:
        onehot: ``(K, H, W)`` float label maps.
        size: ``(h, w)`` feature-map size.

    Returns:
        ``(K, h, w)`` soft labels, same dtype; channels still sum to 1 where the input did.
    """
    if tuple(onehot.shape[-2:]) == tuple(size):
        return onehot.clone()
    return F.interpolate(onehot[None], size=size, mode="bilinear", align_corners=False)[0]


def upsample_labels(soft: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resizes ``(K, h, w)`` soft labels to ``(K, H, W)`` (bilinear, half-pixel, as CRW's cv2)."""
    if tuple(soft.shape[-2:]) == tuple(size):
        return soft
    return F.interpolate(soft[None], size=size, mode="bilinear", align_corners=False)[0]


def radius_mask(h: int, w: int, radius: float, device: torch.device | str | None = None) -> torch.Tensor:
    """Which pairs of feature cells are closer than ``radius`` (strictly, as CRW).

    Returns:
        ``(h*w, h*w)`` bool; entry ``[i, j]`` is True when cell ``j`` may be matched to cell ``i``.
    """
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dist2 = (ys[:, None] - ys[None, :]) ** 2 + (xs[:, None] - xs[None, :]) ** 2
    return dist2 <= max_dist2(radius)


def reference_radius(cfg: PropagationConfig) -> float:
    """Radius of the reference (long-term) frames: ``cfg.radius`` with ``restrict_reference``,
    else ``cfg.long_term_radius`` (``math.inf`` by default: matched over the whole map, as CRW)."""
    return float(cfg.radius) if cfg.restrict_reference else float(cfg.long_term_radius)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _check_inputs(
    query: torch.Tensor, ctx_feats: torch.Tensor, ctx_labels: torch.Tensor, num_reference: int
) -> None:
    if query.dim() != 3:
        raise ShapeMismatchError(f"query features must be (C, h, w), got shape {tuple(query.shape)}")
    if ctx_feats.dim() != 4 or ctx_labels.dim() != 4:
        raise ShapeMismatchError(
            f"context features must be (N, C, h, w) and labels (N, K, h, w), got "
            f"{tuple(ctx_feats.shape)} and {tuple(ctx_labels.shape)}"
        )
    if ctx_feats.shape[0] == 0:
        raise ShapeMismatchError("the context holds no frame (N = 0)")
    if tuple(ctx_feats.shape[1:]) != tuple(query.shape):
        raise ShapeMismatchError(
            f"context features {tuple(ctx_feats.shape)} do not match query features {tuple(query.shape)} "
            "(expected (N, C, h, w) with the query's C, h, w)"
        )
    if ctx_labels.shape[0] != ctx_feats.shape[0] or tuple(ctx_labels.shape[2:]) != tuple(query.shape[1:]):
        raise ShapeMismatchError(
            f"context labels {tuple(ctx_labels.shape)} do not match context features "
            f"{tuple(ctx_feats.shape)} (expected (N, K, h, w))"
        )
    if not 0 <= num_reference <= ctx_feats.shape[0]:
        raise ShapeMismatchError(
            f"num_reference={num_reference} is outside [0, {ctx_feats.shape[0]}] (number of context frames)"
        )


def _dtypes(cfg: PropagationConfig, feats: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype of the dot products, dtype of scores/top-k/softmax/labels: float32 or wider)."""
    compute = cfg.torch_dtype or feats.dtype
    if not compute.is_floating_point:
        compute = torch.float32
    score = torch.promote_types(compute, torch.float32)
    return compute, score


def _weighted_labels(
    values: torch.Tensor, indices: torch.Tensor, ctx_labels: torch.Tensor, score_dtype: torch.dtype
) -> torch.Tensor:
    """Softmax over the kept scores and weighted sum of the kept positions' labels.

    Args:
        values: ``(hw, k)`` scores (already divided by the temperature).
        indices: ``(hw, k)`` indices into the flattened context ``N*h*w``.
        ctx_labels: ``(N, K, h, w)``.

    Returns:
        ``(K, hw)``.
    """
    weights = torch.softmax(values.to(score_dtype), dim=1)
    n, k_obj, h, w = ctx_labels.shape
    flat = ctx_labels.to(score_dtype).permute(1, 0, 2, 3).reshape(k_obj, n * h * w)
    return (flat[:, indices] * weights[None]).sum(dim=-1)


# --------------------------------------------------------------------------------------------
# Dense reference
# --------------------------------------------------------------------------------------------


def propagate_dense(
    query_feat: torch.Tensor,
    ctx_feats: torch.Tensor,
    ctx_labels: torch.Tensor,
    cfg: PropagationConfig,
    num_reference: int = 1,
    query_chunk: int | None = None,
) -> torch.Tensor:
    """CRW propagation with the full affinity matrix (reference implementation / baseline).

    Args:
        query_feat: ``(C, h, w)`` L2-normalised target features.
        ctx_feats: ``(N, C, h, w)`` L2-normalised context features; the first ``num_reference``
            frames are reference (long-term) frames, matched within :func:`reference_radius`
            (the whole map by default); the others within ``cfg.radius``.
        ctx_labels: ``(N, K, h, w)`` soft labels of the context frames.
        cfg: propagation config.
        num_reference: how many leading context frames are reference ("long-term") frames.
        query_chunk: process this many target rows at a time (``None``: all at once, i.e. the
            whole ``hw x N*hw`` matrix, as a literal baseline).

    Returns:
        ``(K, h, w)`` soft labels of the target, float32 (float64 for float64 inputs).
    """
    _check_inputs(query_feat, ctx_feats, ctx_labels, num_reference)
    compute, score = _dtypes(cfg, query_feat)
    n, c, h, w = ctx_feats.shape
    hw = h * w
    q = query_feat.to(compute).reshape(c, hw).t()
    keys = ctx_feats.to(compute).permute(1, 0, 2, 3).reshape(c, n * hw)
    groups = []  # (first frame, end frame, allowed (hw, hw) bool) of the radius-restricted groups
    masks: dict[float, torch.Tensor] = {}
    for lo, hi, radius in ((0, num_reference, reference_radius(cfg)), (num_reference, n, float(cfg.radius))):
        if lo < hi and not (math.isinf(radius) or covers_map(h, w, radius)):
            if radius not in masks:
                masks[radius] = radius_mask(h, w, radius, device=q.device)
            groups.append((lo, hi, masks[radius]))
    k = min(cfg.topk, n * hw)
    chunk = hw if query_chunk is None else max(1, int(query_chunk))
    out = []
    for start in range(0, hw, chunk):
        stop = min(start + chunk, hw)
        aff = (q[start:stop] @ keys).to(score)
        for lo, hi, allowed in groups:
            aff.view(stop - start, n, hw)[:, lo:hi].masked_fill_(~allowed[start:stop, None, :], float("-inf"))
        values, indices = aff.topk(k, dim=1)
        out.append(_weighted_labels(values / cfg.temperature, indices, ctx_labels, score))
    return torch.cat(out, dim=1).reshape(-1, h, w)


# --------------------------------------------------------------------------------------------
# Memory-efficient (default)
# --------------------------------------------------------------------------------------------


def propagate_local(
    query_feat: torch.Tensor,
    ctx_feats: torch.Tensor,
    ctx_labels: torch.Tensor,
    cfg: PropagationConfig,
    num_reference: int = 1,
) -> torch.Tensor:
    """CRW propagation without any dense per-frame affinity (default implementation).

    Same arguments and result as :func:`propagate_dense`. The frames are laid out once in two
    :class:`~corr_core.propagation.memory.FrameMemory` (reference frames, the others), which are
    searched as :func:`propagate_memories` describes. The streaming
    :class:`~corr_core.propagation.tracker.Tracker` keeps such memories between frames instead.
    """
    _check_inputs(query_feat, ctx_feats, ctx_labels, num_reference)
    compute, _ = _dtypes(cfg, query_feat)
    feats = ctx_feats.to(compute)
    n = feats.shape[0]
    reference = recent = None
    if num_reference > 0:
        reference = FrameMemory.from_frames(feats[:num_reference], ctx_labels[:num_reference])
    if num_reference < n:
        recent = FrameMemory.from_frames(feats[num_reference:], ctx_labels[num_reference:])
    return propagate_memories(query_feat, reference, recent, replace(cfg, method="local"))


def propagate_memories(
    query_feat: torch.Tensor,
    reference: FrameMemory | None,
    recent: FrameMemory | None,
    cfg: PropagationConfig,
) -> torch.Tensor:
    """One propagation step against frames held in memories (the streaming tracker's path).

    ``reference`` holds the long-term frames (CRW: the first frame), matched within
    :func:`reference_radius`; ``recent`` the short-term frames, matched within ``cfg.radius``.
    With ``cfg.method == "local"`` each memory is searched for its top-k entries per position
    (:meth:`~corr_core.propagation.memory.FrameMemory.search`: windowed, tile by tile, no dense
    affinity), and the top-k of the union is the top-k of the two parts' top-k's. With ``"dense"``
    the frames are stacked (reference first) and handed to :func:`propagate_dense`.

    Args:
        query_feat: ``(C, h, w)`` L2-normalised target features.
        reference: long-term frames, or None.
        recent: short-term frames, or None.
        cfg: propagation config.

    Returns:
        ``(K, h, w)`` soft labels, float32 (float64 for float64 features or labels).

    Raises:
        ShapeMismatchError: no frame at all, or memories that do not fit the query.
    """
    pairs = ((reference, reference_radius(cfg)), (recent, cfg.radius))
    memories = [(mem, r) for mem, r in pairs if mem is not None and mem.count > 0]
    if not memories:
        raise ShapeMismatchError("the context holds no frame (N = 0)")
    c, h, w = query_feat.shape
    for mem, _ in memories:
        if mem.size != (h, w) or mem.channels != c:
            raise ShapeMismatchError(
                f"memory features ({mem.channels}, {mem.size[0]}, {mem.size[1]}) do not match query "
                f"features {tuple(query_feat.shape)} (expected the same C, h, w)"
            )
    if cfg.method == "dense":
        feats = torch.cat([mem.frames() for mem, _ in memories])
        labels = torch.cat([mem.valid_labels() for mem, _ in memories])
        nref = reference.count if reference is not None else 0
        return propagate_dense(query_feat, feats, labels, cfg, num_reference=nref)
    dtype = memories[0][0].keys.dtype
    _, score = _dtypes(cfg, query_feat)
    score = torch.promote_types(score, torch.promote_types(dtype, torch.float32))
    query = query_feat.to(dtype)
    hw = h * w
    parts_v, parts_i, labels = [], [], []
    offset = 0
    for mem, radius in memories:
        v, i = mem.search(query, cfg.topk, radius, score, cfg.tile_size, cfg.max_block_elements)
        parts_v.append(v)
        parts_i.append(i + offset if offset else i)
        labels.append(mem.valid_labels())
        offset += mem.count * hw
    values, indices = parts_v[0], parts_i[0]
    if len(parts_v) > 1:
        values, indices = torch.cat(parts_v, dim=1), torch.cat(parts_i, dim=1)
        values, pos = values.topk(min(cfg.topk, values.shape[1]), dim=1)
        indices = indices.gather(1, pos)
    ctx_labels = labels[0] if len(labels) == 1 else torch.cat(labels)
    score = torch.promote_types(score, ctx_labels.dtype)
    return _weighted_labels(values / cfg.temperature, indices, ctx_labels, score).reshape(-1, h, w)


def propagate_step(
    query_feat: torch.Tensor,
    ctx_feats: torch.Tensor,
    ctx_labels: torch.Tensor,
    cfg: PropagationConfig,
    num_reference: int = 1,
) -> torch.Tensor:
    """One CRW propagation step with the implementation chosen by ``cfg.method``.

    Args:
        query_feat: ``(C, h, w)`` L2-normalised target features (not re-normalised here).
        ctx_feats: ``(N, C, h, w)`` L2-normalised context features, reference frame(s) first.
        ctx_labels: ``(N, K, h, w)`` context soft labels (one channel per id, background included).
        cfg: propagation config.
        num_reference: number of leading reference (long-term) frames, matched within
            :func:`reference_radius` (CRW: 1, the first frame, over the whole map).

    Returns:
        ``(K, h, w)`` soft labels, float32 (float64 for float64 inputs), on the inputs' device.

    Raises:
        ShapeMismatchError: when the shapes of the inputs do not fit together.
    """
    if cfg.method == "dense":
        return propagate_dense(query_feat, ctx_feats, ctx_labels, cfg, num_reference)
    return propagate_local(query_feat, ctx_feats, ctx_labels, cfg, num_reference)
