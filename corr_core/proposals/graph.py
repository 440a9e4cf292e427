"""A weight-free object proposer: graph-based segmentation at several scales.

Felzenszwalb & Huttenlocher's graph segmentation (IJCV 2004; ``skimage.segmentation.
felzenszwalb``) of the image (RGB), with depth as a fourth channel where a camera gives it,
at a few scales (a larger scale prefers larger segments). Every segment of every scale is a
candidate; holes are filled (a lit face and its shading are one object), segments outside the size
range are dropped, near-duplicates (IoU above ``dedupe_iou``) are merged by keeping the best
scored, and at most ``max_proposals`` are kept.

The score says how much a segment looks like a thing on a surface: the Lab (and depth) contrast
between the segment and a ring around it, times its compactness (area over bounding-box area),
times one plus the number of other scales that found it again (a stable segment), lowered for
segments that touch the image border. Texture blobs on a table have little contrast to their ring;
walls and table tops are too large or run off the image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from scipy import ndimage

from corr_core.errors import ConfigError
from corr_core.proposals import register_proposer
from corr_core.proposals.base import Proposals, check_image


class GraphProposer:
    """Graph-based multi-scale proposals (see the module docstring).

    Args:
        scales: Felzenszwalb ``scale`` values (larger: larger segments).
        sigma: Gaussian smoothing before segmentation (pixels).
        min_area: smallest proposal, as a fraction of the image area.
        max_area: largest proposal, as a fraction of the image area.
        max_proposals: most proposals returned (best scored first).
        dedupe_iou: proposals overlapping a better one by more than this IoU are dropped.
        depth_weight: weight of depth (per metre) against colour (RGB in [0, 1]) when depth is given.
        ring: width of the ring around a segment used for its contrast score (pixels).
        border_penalty: score factor of segments that touch the image border (walls, floor, table
            edges and other "stuff" run off the image; things on a surface mostly do not).
        workers: threads segmenting the scales at once (None: one per scale, at most the CPUs;
            1: one after another). The proposals are the same either way.
    """

    name = "graph"

    def __init__(
        self,
        scales: Sequence[float] = (100.0, 300.0, 900.0),
        sigma: float = 0.8,
        min_area: float = 2.5e-4,
        max_area: float = 0.06,
        max_proposals: int = 64,
        dedupe_iou: float = 0.6,
        depth_weight: float = 2.0,
        ring: int = 3,
        border_penalty: float = 0.25,
        workers: int | None = None,
    ) -> None:
        if not scales or any(float(s) <= 0 for s in scales):
            raise ConfigError(f"GraphProposer: scales must be positive numbers, got {list(scales)}")
        if not 0 <= min_area < max_area <= 1:
            raise ConfigError(f"GraphProposer: need 0 <= min_area < max_area <= 1, got {min_area}, {max_area}")
        if max_proposals < 1:
            raise ConfigError(f"GraphProposer: max_proposals must be >= 1, got {max_proposals}")
        self.scales = tuple(float(s) for s in scales)
        self.sigma = float(sigma)
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.max_proposals = int(max_proposals)
        self.dedupe_iou = float(dedupe_iou)
        self.depth_weight = float(depth_weight)
        self.ring = int(ring)
        self.border_penalty = float(border_penalty)
        if workers is not None and int(workers) < 1:
            raise ConfigError(f"GraphProposer: workers must be >= 1 (or None: one per scale), got {workers}")
        self.workers = int(workers) if workers is not None else max(1, min(len(self.scales), os.cpu_count() or 1))

    def propose(self, rgb: np.ndarray, depth: np.ndarray | None = None, labels: np.ndarray | None = None) -> Proposals:
        """Proposals of an ``(H, W, 3) uint8`` RGB image (``depth``: ``(H, W)`` metres, 0 = none;
        ``labels`` is not used: only the oracle reads ground truth).

        Raises:
            ShapeMismatchError / DataError: a malformed image or depth map.
        """
        from skimage.segmentation import felzenszwalb

        check_image(rgb, depth)
        h, w = rgb.shape[:2]
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)  # for the scores
        lab[..., 0] *= 100.0 / 255.0  # L in [0, 100]; a, b offset by 128
        lab[..., 1:] -= 128.0
        feats = rgb.astype(np.float32) / 255.0  # segmented in RGB in [0, 1], as skimage scales uint8
        if depth is not None:
            d = np.asarray(depth, np.float32)
            feats = np.concatenate([feats, d[..., None] * self.depth_weight], axis=2)
            lab = np.concatenate([lab, d[..., None] * 100.0], axis=2)  # scores: 1 cm ~ 1 Lab unit
        lo, hi = self.min_area * h * w, self.max_area * h * w

        def segment(scale: float) -> list[_Segment]:
            with warnings.catch_warnings():  # skimage warns that 4 channels may not be intended: they are
                warnings.simplefilter("ignore", RuntimeWarning)
                seg = felzenszwalb(feats, scale=scale, sigma=self.sigma, min_size=max(4, int(lo)), channel_axis=2)
            return _segments(seg, lo, hi)

        if self.workers > 1 and len(self.scales) > 1:  # skimage's segmentation releases the GIL
            with ThreadPoolExecutor(min(self.workers, len(self.scales))) as pool:
                per_scale = list(pool.map(segment, self.scales))
        else:
            per_scale = [segment(scale) for scale in self.scales]
        cands = [c for segs in per_scale for c in segs]  # in scale order, whatever the threads did
        if not cands:
            return Proposals.empty((h, w))
        for c in cands:
            c.score = self._score(c, lab)
        kept = _dedupe(cands, self.dedupe_iou)[: self.max_proposals]
        masks = np.zeros((len(kept), h, w), bool)
        for k, c in enumerate(kept):
            masks[k][c.box] = c.mask
        return Proposals(masks, np.asarray([c.score for c in kept], np.float32))

    def _score(self, seg: _Segment, lab: np.ndarray) -> float:
        """Lab contrast to a ring around the segment, times area over bounding-box area."""
        r = self.ring
        ys, xs = seg.box
        h, w = lab.shape[:2]
        y0, y1 = max(0, ys.start - r), min(h, ys.stop + r)
        x0, x1 = max(0, xs.start - r), min(w, xs.stop + r)
        sub = np.zeros((y1 - y0, x1 - x0), bool)
        sub[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = seg.mask
        ring = cv2.dilate(sub.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool) & ~sub
        if not ring.any():
            return 0.0
        patch = lab[y0:y1, x0:x1]
        contrast = float(np.linalg.norm(patch[sub].mean(0) - patch[ring].mean(0)))
        compact = seg.area / float(seg.mask.size)
        touches = ys.start == 0 or xs.start == 0 or ys.stop == h or xs.stop == w
        return contrast * compact * (self.border_penalty if touches else 1.0)


class _Segment:
    """A candidate: its mask inside its bounding box ``box`` (a pair of slices)."""

    __slots__ = ("area", "box", "mask", "score", "support")

    def __init__(self, box: tuple[slice, slice], mask: np.ndarray) -> None:
        self.box, self.mask = box, mask
        self.area = int(mask.sum())
        self.score = 0.0
        self.support = 0  # near-duplicates found at the other scales (a stable segment)

    def iou(self, other: _Segment) -> float:
        (ay, ax), (by, bx) = self.box, other.box
        y0, y1 = max(ay.start, by.start), min(ay.stop, by.stop)
        x0, x1 = max(ax.start, bx.start), min(ax.stop, bx.stop)
        if y0 >= y1 or x0 >= x1:
            return 0.0
        a = self.mask[y0 - ay.start : y1 - ay.start, x0 - ax.start : x1 - ax.start]
        b = other.mask[y0 - by.start : y1 - by.start, x0 - bx.start : x1 - bx.start]
        inter = int(np.count_nonzero(a & b))
        return inter / (self.area + other.area - inter) if inter else 0.0


def _segments(seg: np.ndarray, lo: float, hi: float) -> list[_Segment]:
    """Hole-filled segments of the labelled image ``seg`` whose area is within ``[lo, hi]``."""
    counts = np.bincount(seg.reshape(-1))
    boxes = ndimage.find_objects(seg + 1)
    out = []
    for label in np.nonzero((counts >= lo) & (counts <= hi))[0]:
        box = boxes[label]
        mask = seg[box] == label
        filled = ndimage.binary_fill_holes(mask)
        if filled.sum() <= hi:
            mask = filled
        out.append(_Segment(box, mask))
    return out


def _dedupe(cands: list[_Segment], iou_thresh: float) -> list[_Segment]:
    """Best-scored first; a candidate overlapping a kept one by more than ``iou_thresh`` is dropped
    and counts as support for it (the first such kept one, in kept order). Returns the kept ones
    ranked by ``score * (1 + support)``: a segment found again at other scales is stable, as SAM
    ranks masks by stability. Only kept segments whose bounding box meets the candidate's are
    compared (a vectorised test: most pairs of small segments are far apart)."""
    kept: list[_Segment] = []
    boxes = np.zeros((len(cands), 4), np.int64)  # y0, y1, x0, x1 of the kept segments
    for c in sorted(cands, key=lambda c: -c.score):
        ys, xs = c.box
        k = boxes[: len(kept)]
        meets = (np.maximum(k[:, 0], ys.start) < np.minimum(k[:, 1], ys.stop)) & (
            np.maximum(k[:, 2], xs.start) < np.minimum(k[:, 3], xs.stop))
        for j in np.flatnonzero(meets):
            if c.iou(kept[j]) > iou_thresh:
                kept[j].support += 1
                break
        else:
            boxes[len(kept)] = (ys.start, ys.stop, xs.start, xs.stop)
            kept.append(c)
    for k in kept:
        k.score *= 1 + k.support
    return sorted(kept, key=lambda c: -c.score)


@register_proposer("graph")
def graph_proposer(**kwargs: object) -> GraphProposer:
    """The weight-free graph-based proposer (:class:`GraphProposer`)."""
    return GraphProposer(**kwargs)  # type: ignore[arg-type]
