"""Context frames held for matching, and the exact top-k search behind windowed propagation.

:class:`FrameMemory` keeps a fixed number of frames' features *frames innermost and channels
last*, ``(h, w, S, C)``. With that layout every rectangle of cells of all ``S`` frames is a strided
view whose rows (one patch row: ``width * S`` consecutive ``C``-vectors) are contiguous, so one
batched matmul reads a query tile's whole context patch without copying it. A frame is written
once, when it enters the memory (:meth:`FrameMemory.write`); the streaming tracker therefore pays
only the new frame's layout per step, never the whole context's.

:meth:`FrameMemory.search` returns, for every query position, the ``k`` best context entries
(score and flat index ``slot * h * w + y * w + x``) among the cells closer than ``radius`` (or all
cells, for an unrestricted radius). It is exact: the selection is the top-k of all admissible
entries, computed in two stages that never look at most of them twice:

1. per cell, the maximum over the ``S`` frames (one vectorised reduction);
2. the top-k cells by that maximum (cells outside the radius excluded), then the top-k of the
   ``k * S`` entries of those cells.

Stage 2 is exact because the cells holding the ``k`` best entries all have a maximum at least as
large as the k-th best entry, and at most ``k - 1`` cells can have a strictly larger maximum (each
holds an entry that beats the k-th); so they are among the top-k cells (with ties, equal values
are exchanged, never lost). :func:`grouped_topk` applies the same argument to large candidate
sets split into groups (used for unrestricted matching over the whole map).
"""

from __future__ import annotations

import functools
import math

import torch

from corr_core.errors import ShapeMismatchError

_NEG_INF = float("-inf")
_GLOBAL_BLOCK = 1_500_000  # score elements per block of unrestricted matching (speed only)


def max_dist2(radius: float) -> int:
    """Largest integer squared distance strictly below ``radius**2`` (integer maths on any device)."""
    r2 = float(radius) * float(radius)  # inf, not OverflowError, for huge radii
    return 2**62 if not math.isfinite(r2) or r2 > 2**62 else math.ceil(r2) - 1


def covers_map(h: int, w: int, radius: float) -> bool:
    """True when every pair of cells of an ``h x w`` map is closer than ``radius``."""
    return (h - 1) ** 2 + (w - 1) ** 2 <= max_dist2(radius)


@functools.lru_cache(maxsize=256)
def auto_tile_size(h: int, w: int, reach: int, channels: int, frames: int) -> int:
    """Side of the square query tiles of :meth:`FrameMemory.search` (a speed knob only).

    Cost model of one ``t x t`` tile, in multiply-add equivalents: its matmul reads a clipped
    context patch of ``P = (t + 2 * reach)^2`` cells of ``frames`` frames and ``C`` channels once
    and multiplies it with ``t^2`` queries, ``P * frames * C * (t^2 + 27)`` (a patch element loaded
    into the matmul costs about 27 multiply-adds: small tiles are memory-bound), plus about
    ``1e7`` for the few dozen small tensor operations per tile (timed on a 2-core CPU). Larger
    tiles waste work on patch cells outside most of their queries' radius; smaller ones pay the
    loads and the per-tile overhead more often. Sides are multiples of 4 (``t^2`` queries a
    multiple of 16 suits the matmul kernels: 8 beat 7, 9 and 10 by 10-25 %), unless the map is
    smaller.
    """
    best, best_cost = 1, math.inf
    for t in sorted({min(t, max(h, w)) for t in range(4, 33, 4)}):
        cost = 0.0
        for y0 in range(0, h, t):
            span_y = min(h, y0 + t + reach) - max(0, y0 - reach)
            for x0 in range(0, w, t):
                span_x = min(w, x0 + t + reach) - max(0, x0 - reach)
                m = (min(h, y0 + t) - y0) * (min(w, x0 + t) - x0)
                cost += span_y * span_x * frames * channels * (m + 27) + 1e7
        if cost < best_cost:
            best, best_cost = t, cost
    return best


def _topk_dim0(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.topk(k, dim=0)`` for a ``(P, M)`` tensor (values and row indices, ``(k, M)``)."""
    return x.topk(k, dim=0)


def grouped_topk(x: torch.Tensor, k: int, group: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k along dim 0 of ``x`` ``(P, M)``, through the maxima of groups of ``group`` rows.

    The top-k groups by maximum hold the top-k rows (see the module docstring), so only
    ``k * group`` rows per column are ranked in full; the last group may be shorter. Returns the
    same values as ``x.topk(k, dim=0)``; the indices agree wherever the values are distinct
    (where a ``-inf`` value had to fill a place, its index is any valid row).

    Args:
        x: ``(P, M)`` scores; ``k <= P``.
        k: how many rows to keep per column.
        group: rows per group.

    Returns:
        ``(k, M)`` values (descending) and ``(k, M)`` row indices into ``x``.
    """
    p, m = x.shape
    if k > p:
        raise ShapeMismatchError(f"grouped_topk: k={k} is larger than the {p} rows")
    full, rest = divmod(p, group)
    if full + (rest > 0) <= k or p <= 4 * group * k:
        return _topk_dim0(x, k)
    gmax = x[: full * group].view(full, group, m).amax(1)
    if rest:
        gmax = torch.cat([gmax, x[full * group :].amax(0, keepdim=True)])
    _, gidx = _topk_dim0(gmax, k)  # (k, M)
    rows = (gidx[:, None, :] * group + torch.arange(group, device=x.device)[None, :, None]).reshape(-1, m)
    beyond = rows >= p  # only in the shorter last group
    rows.clamp_(max=p - 1)
    cand = x.gather(0, rows)
    if rest:
        cand.masked_fill_(beyond, _NEG_INF)
    values, pos = _topk_dim0(cand, k)
    return values, rows.gather(0, pos)


def select_topk(
    scores: torch.Tensor, k: int, blocked: torch.Tensor | None = None, group: int = 32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact top-k of ``P * S`` candidates per query, cell maxima first (see the module docstring).

    Args:
        scores: ``(P, S, M)`` scores of ``P`` cells in ``S`` frames for ``M`` queries. Not
            modified unless ``S == 1`` (then blocked cells are set to ``-inf`` in place).
        k: entries kept per query; at most ``P * S``.
        blocked: ``(P, M)`` bool, True where a cell may not be matched to a query (its entries
            end up as ``-inf`` when they have to fill the k places).
        group: group size for :func:`grouped_topk` over the cells.

    Returns:
        ``(k, M)`` values (descending), ``(k, M)`` cell indices, ``(k, M)`` frame indices.
    """
    p, s, m = scores.shape
    cmax = scores.view(p, m) if s == 1 else scores.amax(1)
    if blocked is not None:
        cmax.masked_fill_(blocked, _NEG_INF)
    kc = min(k, p)
    cvals, cells = grouped_topk(cmax, kc, group)
    if s == 1:
        return cvals, cells, torch.zeros_like(cells)
    cand = scores.gather(0, cells[:, None, :].expand(kc, s, m))  # (kc, S, M)
    if blocked is not None:
        cand.masked_fill_((cvals == _NEG_INF)[:, None, :], _NEG_INF)  # chosen only to fill k places
    values, pos = _topk_dim0(cand.view(kc * s, m), min(k, kc * s))
    return values, cells.gather(0, pos // s), pos % s


class FrameMemory:
    """A fixed number of context frames (features and soft labels) in the layout the search reads.

    Slots ``[0, count)`` hold frames; :meth:`write` fills or overwrites one slot (slots must be
    filled in order: writing slot ``count`` appends). Which frame sits in which slot is the
    owner's business (a ring buffer, a reference set); results index frames by slot.

    Args:
        capacity: number of slots ``S``.
        channels: feature channels ``C``.
        size: feature-map size ``(h, w)``.
        num_labels: soft-label channels ``K``.
        dtype: feature dtype (labels are float32).
        device: where everything lives.
    """

    def __init__(
        self,
        capacity: int,
        channels: int,
        size: tuple[int, int],
        num_labels: int,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity < 1:
            raise ShapeMismatchError(f"FrameMemory: capacity must be >= 1, got {capacity}")
        h, w = int(size[0]), int(size[1])
        self.keys = torch.zeros(h, w, capacity, channels, dtype=dtype, device=device)
        self.labels = torch.zeros(capacity, num_labels, h, w, dtype=torch.float32, device=device)
        self.count = 0

    @classmethod
    def from_frames(cls, feats: torch.Tensor, labels: torch.Tensor) -> FrameMemory:
        """A full memory holding ``feats`` ``(S, C, h, w)`` and ``labels`` ``(S, K, h, w)`` in order.

        The features are copied frame by frame (much faster than one 4-d transpose); the labels
        are kept as they are (any float dtype: the functional API accepts float64).
        """
        s, c, h, w = feats.shape
        mem = cls.__new__(cls)
        mem.keys = torch.empty(h, w, s, c, dtype=feats.dtype, device=feats.device)
        for i in range(s):
            mem.keys[:, :, i].copy_(feats[i].permute(1, 2, 0))
        mem.labels = labels
        mem.count = s
        return mem

    # ------------------------------------------------------------------ state

    @property
    def capacity(self) -> int:
        return int(self.keys.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.keys.shape[0]), int(self.keys.shape[1])

    @property
    def channels(self) -> int:
        return int(self.keys.shape[3])

    @property
    def nbytes(self) -> int:
        """Bytes held (features and labels, all slots)."""
        return self.keys.numel() * self.keys.element_size() + self.labels.numel() * self.labels.element_size()

    def write(self, slot: int, feat: torch.Tensor, labels: torch.Tensor) -> None:
        """Stores ``feat`` ``(C, h, w)`` and ``labels`` ``(K, h, w)`` in ``slot`` (one copy each)."""
        if not 0 <= slot <= min(self.count, self.capacity - 1):
            raise ShapeMismatchError(
                f"FrameMemory.write: slot {slot} outside [0, {min(self.count, self.capacity - 1)}]"
            )
        self.keys[:, :, slot].copy_(feat.permute(1, 2, 0))
        self.labels[slot].copy_(labels)
        self.count = max(self.count, slot + 1)

    def frames(self) -> torch.Tensor:
        """``(count, C, h, w)`` view of the stored features (for the dense implementation)."""
        return self.keys[:, :, : self.count].permute(2, 3, 0, 1)

    def valid_labels(self) -> torch.Tensor:
        """``(count, K, h, w)`` soft labels of the stored frames."""
        return self.labels[: self.count]

    # ------------------------------------------------------------------ search

    def search(
        self,
        query: torch.Tensor,
        k: int,
        radius: float,
        score_dtype: torch.dtype = torch.float32,
        tile: int = 0,
        max_block_elements: int = 1 << 24,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k context entries of every query position (exact; see the module docstring).

        Args:
            query: ``(C, h, w)`` query features, in the memory's dtype.
            k: entries kept per query.
            radius: a cell may match a query when their feature-grid distance is strictly
                smaller (``math.inf``: any cell).
            score_dtype: dtype of the returned scores (float32 or wider).
            tile: side of the query tiles (0: :func:`auto_tile_size`); speed only.
            max_block_elements: bound on the scores of one block of unrestricted matching.

        Returns:
            ``(h*w, k')`` raw dot products (descending; ``-inf`` where fewer than ``k'``
            admissible entries exist) and ``(h*w, k')`` indices ``slot * h*w + y * w + x``, with
            ``k' = min(k, count * h * w)``.
        """
        h, w = self.size
        s = self.count
        if s == 0:
            raise ShapeMismatchError("FrameMemory.search: the memory holds no frame")
        k_out = min(k, s * h * w)
        keys = self.keys[:, :, :s]
        if math.isinf(radius) or covers_map(h, w, radius):
            return self._search_global(query, keys, k_out, score_dtype, max_block_elements)
        return self._search_windowed(query, keys, k_out, radius, score_dtype, tile)

    @staticmethod
    def _search_global(
        query: torch.Tensor, keys: torch.Tensor, k: int, score_dtype: torch.dtype, max_block: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w, s, c = keys.shape
        hw = h * w
        flat = keys.reshape(hw * s, c)  # a view when the memory is full
        q = query.reshape(c, hw)
        # Blocks of about _GLOBAL_BLOCK score elements keep the matmul output cache-friendly.
        rows = max(1, min(hw, max_block // (hw * s), max(16, _GLOBAL_BLOCK // (hw * s))))
        values = torch.empty(hw, k, dtype=score_dtype, device=query.device)
        indices = torch.empty(hw, k, dtype=torch.long, device=query.device)
        buf = torch.empty(hw * s * rows, dtype=keys.dtype, device=query.device)
        for start in range(0, hw, rows):
            stop = min(start + rows, hw)
            scores = buf[: hw * s * (stop - start)].view(hw * s, stop - start)
            torch.mm(flat, q[:, start:stop], out=scores)
            v, cell, slot = select_topk(scores.view(hw, s, stop - start), k)
            values[start:stop] = v.t()
            indices[start:stop] = (slot * hw + cell).t()
        return values, indices

    @staticmethod
    def _search_windowed(
        query: torch.Tensor, keys: torch.Tensor, k: int, radius: float, score_dtype: torch.dtype, tile: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w, s, c = keys.shape
        hw = h * w
        device = query.device
        reach = min(math.ceil(radius) - 1, max(h, w) - 1)  # farthest row/column offset inside the radius
        limit = max_dist2(radius)
        t = tile or auto_tile_size(h, w, reach, c, s)
        ty, tx = min(t, h), min(t, w)
        q_hwc = query.permute(1, 2, 0)
        values = torch.full((h, w, k), _NEG_INF, dtype=score_dtype, device=device)
        indices = torch.zeros(h, w, k, dtype=torch.long, device=device)
        span_y, span_x = min(h, ty + 2 * reach), min(w, tx + 2 * reach)
        buf = torch.empty(span_y * span_x * s * ty * tx, dtype=keys.dtype, device=device)
        masks: dict[tuple[int, ...], torch.Tensor] = {}
        for y0 in range(0, h, ty):
            y1 = min(y0 + ty, h)
            ys, ye = max(0, y0 - reach), min(h, y1 + reach)
            for x0 in range(0, w, tx):
                x1 = min(x0 + tx, w)
                xs, xe = max(0, x0 - reach), min(w, x1 + reach)
                m, p, bw = (y1 - y0) * (x1 - x0), (ye - ys) * (xe - xs), xe - xs
                q = q_hwc[y0:y1, x0:x1].reshape(m, c)
                patch = keys[ys:ye, xs:xe].reshape(ye - ys, bw * s, c)  # a view when the memory is full
                scores = buf[: p * s * m].view(ye - ys, bw * s, m)
                torch.bmm(patch, q.t().expand(ye - ys, c, m), out=scores)
                geometry = (ys - y0, ye - y0, xs - x0, xe - x0, y1 - y0, x1 - x0)
                blocked = masks.get(geometry)
                if blocked is None:
                    blocked = masks[geometry] = _blocked(geometry, limit, device)
                v, cell, slot = select_topk(scores.view(p, s, m), k, blocked)
                kk = v.shape[0]
                idx = slot * hw + (ys + cell // bw) * w + (xs + cell % bw)
                values[y0:y1, x0:x1, :kk] = v.t().reshape(y1 - y0, x1 - x0, kk)
                indices[y0:y1, x0:x1, :kk] = idx.t().reshape(y1 - y0, x1 - x0, kk)
        return values.view(hw, k), indices.view(hw, k)


def _blocked(geometry: tuple[int, ...], limit: int, device: torch.device) -> torch.Tensor:
    """``(P, M)`` bool: patch cell too far from query (coordinates relative to the tile origin)."""
    ys, ye, xs, xe, th, tw = geometry
    cy = torch.arange(ys, ye, device=device).repeat_interleave(xe - xs)
    cx = torch.arange(xs, xe, device=device).repeat(ye - ys)
    qy = torch.arange(th, device=device).repeat_interleave(tw)
    qx = torch.arange(tw, device=device).repeat(th)
    return (cy[:, None] - qy[None]) ** 2 + (cx[:, None] - qx[None]) ** 2 > limit
