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
* :func:`propagate_local` (default): reference frames are matched globally in query chunks, the
  radius-restricted frames only inside the ``(2R+1)^2`` window around each position, computed per
  tile of ``t x t`` query positions against the ``(t+2R)^2`` context patch that covers all their
  windows. Out-of-image window entries are excluded (``-inf``), never zero-padded into the top-k.
  No dense ``hw x hw`` affinity is ever built; memory per block is bounded by
  ``PropagationConfig.max_block_elements``.

Functions here are pure and device-agnostic: they run where their input tensors live.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from corr_core.errors import ConfigError, ShapeMismatchError

METHODS = ("local", "dense")
LABEL_RESIZE = ("stretch", "grid")
DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


@dataclass
class PropagationConfig:
    """Hyper-parameters of CRW label propagation (defaults: SFC Table 0.A.1, DAVIS column).

    Attributes:
        topk: number of context positions kept per target position (over all context frames).
        context: ``m``, number of preceding frames (with predicted soft labels) in the context.
        radius: spatial radius ``r'`` in feature cells; a context position is a candidate when its
            Euclidean distance to the target position is strictly smaller (CRW's ``D < radius``).
            ``math.inf`` disables the restriction.
        temperature: affinities are divided by it before the softmax (CRW README: 0.05).
        feature_stride: stride of the feature map w.r.t. the frame (the tracker checks the model's
            output size against it).
        method: ``"local"`` (memory-efficient, default) or ``"dense"`` (reference).
        restrict_reference: also apply the radius to the reference (first) frame. CRW does not.
        pad_context: start the short-term memory with ``context`` copies of the reference frame,
            as CRW's data loader does (it repeats the first frame ``videoLen`` times).
        dtype: dtype of the feature dot products (``"float16"``/``"bfloat16"`` are meant for CUDA);
            ``None`` uses the features' dtype. Top-k and softmax always run in float32 or wider.
        label_resize: how label maps go between frame and feature grid when the frame size is not
            a multiple of ``feature_stride``. ``"stretch"`` (CRW): resize the whole frame onto the
            grid and back. ``"grid"``: cell ``i`` covers pixels ``[s*i, s*(i+1))`` as in a padded
            stride-``s`` network: labels are edge-padded (or cropped) to ``grid * s`` pixels before
            the resize, predictions cropped (or edge-padded) after it. Identical when the size
            is a multiple of the stride.
        tile_size: side of the query tiles of the local implementation (speed knob only; 0 picks
            one from the map size, radius and channels).
        max_block_elements: upper bound on the elements of one affinity block (memory knob only).
    """

    topk: int = 10
    context: int = 20
    radius: float = 12.0
    temperature: float = 0.05
    feature_stride: int = 8
    method: str = "local"
    restrict_reference: bool = False
    pad_context: bool = True
    dtype: str | None = None
    label_resize: str = "stretch"
    tile_size: int = 0
    max_block_elements: int = 1 << 24

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field.

        Raises:
            ConfigError: naming the first invalid field and its value.
        """
        for name, low in (
            ("topk", 1),
            ("context", 0),
            ("feature_stride", 1),
            ("tile_size", 0),
            ("max_block_elements", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"PropagationConfig.{name} must be an integer >= {low}, got {value!r}")
        for name in ("radius", "temperature"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or math.isnan(value)
                or value <= 0
            ):
                raise ConfigError(f"PropagationConfig.{name} must be a number > 0, got {value!r}")
        if math.isinf(self.temperature):
            raise ConfigError(f"PropagationConfig.temperature must be finite, got {self.temperature!r}")
        if self.method not in METHODS:
            raise ConfigError(f"PropagationConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.label_resize not in LABEL_RESIZE:
            raise ConfigError(
                f"PropagationConfig.label_resize must be one of {LABEL_RESIZE}, got {self.label_resize!r}"
            )
        for name in ("restrict_reference", "pad_context"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"PropagationConfig.{name} must be true or false, got {getattr(self, name)!r}"
                )
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigError(
                f"PropagationConfig.dtype must be null or one of {sorted(DTYPES)}, got {self.dtype!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PropagationConfig:
        """Builds a config from a mapping (e.g. parsed YAML).

        Raises:
            ConfigError: on an unknown key or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"PropagationConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (for resolved-config files)."""
        return asdict(self)

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """``dtype`` as a ``torch.dtype`` (None when unset)."""
        return None if self.dtype is None else DTYPES[self.dtype]


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
    return dist2 <= _max_dist2(radius)


def _max_dist2(radius: float) -> int:
    """Largest integer squared distance strictly below ``radius**2`` (integer maths on any device)."""
    r2 = float(radius) * float(radius)  # inf, not OverflowError, for huge radii
    return 2**62 if not math.isfinite(r2) or r2 > 2**62 else math.ceil(r2) - 1


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


def _covers_map(h: int, w: int, radius: float) -> bool:
    """True when every pair of cells is closer than ``radius`` (the restriction is a no-op)."""
    return (h - 1) ** 2 + (w - 1) ** 2 <= _max_dist2(radius)


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
            frames are reference frames (not radius-restricted unless ``cfg.restrict_reference``).
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
    first_restricted = 0 if cfg.restrict_reference else num_reference
    allowed = None
    if first_restricted < n and not math.isinf(cfg.radius):
        allowed = radius_mask(h, w, cfg.radius, device=q.device)
    k = min(cfg.topk, n * hw)
    chunk = hw if query_chunk is None else max(1, int(query_chunk))
    out = []
    for start in range(0, hw, chunk):
        stop = min(start + chunk, hw)
        aff = (q[start:stop] @ keys).to(score)
        if allowed is not None:
            aff.view(stop - start, n, hw)[:, first_restricted:].masked_fill_(
                ~allowed[start:stop, None, :], float("-inf")
            )
        values, indices = aff.topk(k, dim=1)
        out.append(_weighted_labels(values / cfg.temperature, indices, ctx_labels, score))
    return torch.cat(out, dim=1).reshape(-1, h, w)


# --------------------------------------------------------------------------------------------
# Memory-efficient (default)
# --------------------------------------------------------------------------------------------


def _topk_global(
    q: torch.Tensor, keys: torch.Tensor, cfg: PropagationConfig, score: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k over all positions of ``keys`` for each query, in chunks of query rows.

    Args:
        q: ``(hw, C)`` queries (compute dtype).
        keys: ``(L, C, h, w)`` frames matched without radius.

    Returns:
        ``(hw, k')`` raw dot products (not yet divided by the temperature) and indices into the
        flattened ``L*h*w`` keys.
    """
    n, c, h, w = keys.shape
    total = n * h * w
    flat = keys.to(q.dtype).permute(1, 0, 2, 3).reshape(c, total)
    k = min(cfg.topk, total)
    rows = max(1, cfg.max_block_elements // total)
    hw = q.shape[0]
    values = torch.empty(hw, k, dtype=score, device=q.device)
    indices = torch.empty(hw, k, dtype=torch.long, device=q.device)
    for start in range(0, hw, rows):
        stop = min(start + rows, hw)
        aff = (q[start:stop] @ flat).to(score)
        values[start:stop], indices[start:stop] = aff.topk(k, dim=1)
    return values, indices


def auto_tile_size(h: int, w: int, r: int, c: int) -> int:
    """Tile side for :func:`_topk_windowed` minimising a simple cost model.

    Per tile the work is ``(t+2r)^2`` patch cells times (``c`` for copying the patch + ``t^2`` times
    the matmul, masking and top-k per cell); weights measured on a 2-core CPU (they only pick a
    speed knob, the result does not depend on it).
    """
    best, best_cost = 4, math.inf
    for t in range(4, 33):
        tiles = -(-h // t) * -(-w // t)
        cost = tiles * (t + 2 * r) ** 2 * (c + t * t * (0.014 * c + 1.45))
        if cost < best_cost:
            best, best_cost = t, cost
    return best


def _topk_windowed(
    query: torch.Tensor, keys: torch.Tensor, cfg: PropagationConfig, score: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k inside the radius window of each query over the frames ``keys``, tile by tile.

    The map is cut into ``t x t`` query tiles; each tile is matched against the ``(t+2R)^2``
    context patch that holds every window of its positions (``R = ceil(radius) - 1``), one
    batched matmul per group of tiles. Entries outside the radius or outside the image get
    ``-inf`` (they never win over a real entry and get zero softmax weight).

    Args:
        query: ``(C, h, w)`` (compute dtype).
        keys: ``(S, C, h, w)`` radius-restricted frames.

    Returns:
        ``(hw, k')`` raw dot products (not yet divided by the temperature) and indices into the
        flattened ``S*h*w`` keys.
    """
    s, c, h, w = keys.shape
    hw = h * w
    device = query.device
    radius = float(cfg.radius)
    r = min(math.ceil(radius) - 1, max(h, w) - 1)
    t = cfg.tile_size or auto_tile_size(h, w, r, c)
    span = t + 2 * r
    area = span * span
    ny, nx = -(-h // t), -(-w // t)
    hp, wp = ny * t, nx * t

    # Queries as (tile row, tile col, position in tile, C).
    q_tiles = F.pad(query, (0, wp - w, 0, hp - h)).reshape(c, ny, t, nx, t).permute(1, 3, 2, 4, 0)
    q_tiles = q_tiles.reshape(ny, nx, t * t, c)
    # Keys channels-last and zero-padded by R (+ tile remainder): patches are cheap strided views.
    padded = F.pad(keys.to(query.dtype), (r, wp - w + r, r, hp - h + r)).permute(0, 2, 3, 1)
    patches = padded.unfold(1, span, t).unfold(2, span, t)  # (S, ny, nx, C, span, span), a view

    # blocked[ty, tx, query, cell]: outside the radius, or outside the image.
    inside = torch.zeros(hp + 2 * r, wp + 2 * r, dtype=torch.bool, device=device)
    inside[r : r + h, r : r + w] = True
    inside = inside.unfold(0, span, t).unfold(1, span, t).reshape(ny, nx, 1, area)
    a = torch.arange(t, device=device)
    u = torch.arange(span, device=device)
    dy = u[None, :] - r - a[:, None]  # (t, span): patch row - query row
    near = (dy[:, None, :, None] ** 2 + dy[None, :, None, :] ** 2) <= _max_dist2(radius)  # [ay, ax, uy, ux]
    blocked = ~(near.reshape(1, 1, t * t, area) & inside)  # (ny, nx, t*t, area)
    # Image coordinates of the patch cells of tile (0, 0); tiles add (ty * t, tx * t).
    cell_y = (u - r)[:, None].expand(span, span).reshape(area)
    cell_x = (u - r)[None, :].expand(span, span).reshape(area)

    k = min(cfg.topk, s * area)
    values = torch.empty(ny, nx, t * t, k, dtype=score, device=device)
    indices = torch.empty(ny, nx, t * t, k, dtype=torch.long, device=device)
    per_tile = s * area * (t * t + c)
    group = max(1, min(nx, cfg.max_block_elements // per_tile))
    for ty in range(ny):
        for tx0 in range(0, nx, group):
            tx1 = min(tx0 + group, nx)
            g = tx1 - tx0
            # (g, S, span, span, C) copy, contiguous rows of span*C: then (g, S*area, C).
            patch = patches[:, ty, tx0:tx1].permute(1, 0, 3, 4, 2).reshape(g, s * area, c)
            aff = torch.bmm(q_tiles[ty, tx0:tx1], patch.transpose(1, 2)).to(score)
            aff.view(g, t * t, s, area).masked_fill_(blocked[ty, tx0:tx1, :, None, :], float("-inf"))
            val, idx = aff.topk(k, dim=2)
            frame, cell = idx // area, idx % area
            tile_x = (torch.arange(tx0, tx1, device=device) * t)[:, None, None]
            y = (cell_y[cell] + ty * t).clamp_(0, h - 1)
            x = (cell_x[cell] + tile_x).clamp_(0, w - 1)
            values[ty, tx0:tx1] = val
            indices[ty, tx0:tx1] = frame * hw + y * w + x

    def untile(z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(ny, nx, t, t, k).permute(0, 2, 1, 3, 4).reshape(hp, wp, k)
        return z[:h, :w].reshape(hw, k)

    return untile(values), untile(indices)


def propagate_local(
    query_feat: torch.Tensor,
    ctx_feats: torch.Tensor,
    ctx_labels: torch.Tensor,
    cfg: PropagationConfig,
    num_reference: int = 1,
) -> torch.Tensor:
    """CRW propagation without any dense per-frame affinity (default implementation).

    Same arguments and result as :func:`propagate_dense`. Reference frames (unless
    ``cfg.restrict_reference``) are matched globally in chunks of query rows; the other frames only
    inside the radius window. The top-k of the union is the top-k of the per-part top-k's.
    """
    _check_inputs(query_feat, ctx_feats, ctx_labels, num_reference)
    compute, score = _dtypes(cfg, query_feat)
    n, c, h, w = ctx_feats.shape
    hw = h * w
    split = 0 if cfg.restrict_reference else num_reference
    if math.isinf(cfg.radius) or _covers_map(h, w, cfg.radius):
        split = n  # the radius excludes nothing: match every frame globally
    query = query_feat.to(compute)
    parts_v, parts_i = [], []
    if split > 0:
        v, i = _topk_global(query.reshape(c, hw).t(), ctx_feats[:split], cfg, score)
        parts_v.append(v)
        parts_i.append(i)
    if split < n:
        v, i = _topk_windowed(query, ctx_feats[split:], cfg, score)
        parts_v.append(v)
        parts_i.append(i + split * hw)
    values, indices = torch.cat(parts_v, dim=1), torch.cat(parts_i, dim=1)
    k = min(cfg.topk, values.shape[1])
    if len(parts_v) > 1:
        values, pos = values.topk(k, dim=1)
        indices = indices.gather(1, pos)
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
        num_reference: number of leading reference frames (CRW: 1, the first frame).

    Returns:
        ``(K, h, w)`` soft labels, float32 (float64 for float64 inputs), on the inputs' device.

    Raises:
        ShapeMismatchError: when the shapes of the inputs do not fit together.
    """
    if cfg.method == "dense":
        return propagate_dense(query_feat, ctx_feats, ctx_labels, cfg, num_reference)
    return propagate_local(query_feat, ctx_feats, ctx_labels, cfg, num_reference)
