"""DAVIS video object segmentation metrics: region similarity J and boundary accuracy F.

Semantics follow the official DAVIS 2017 evaluation (``davisvideochallenge/davis2017-evaluation``,
semi-supervised task) so that the numbers are interchangeable with published ones:

* J is the Jaccard index of one object's mask; an object absent from both the annotation and the
  prediction scores 1.
* F is the F-measure of boundary precision/recall: boundaries are the one-pixel bitmap of
  ``seg2bmap``; a boundary pixel matches if the other boundary lies within a disk of radius
  ``ceil(0.008 * image diagonal)`` (8 px at 480p). Both boundaries empty -> 1, one empty -> 0.
* Per object the per-frame values give Mean, Recall (fraction > 0.5) and Decay (mean of the first
  quarter minus mean of the last quarter, the official overlapping quarters).
* Objects are the ids ``1..max(first annotation frame)``; the first and last frames are not scored;
  annotation value 255 (void) counts as background, as in the official reader. Predictions must use
  exactly these ids: an id above the object count is an error (the official script exits); a
  prediction that never shows the highest id is an error too unless ``missing_objects="empty"``.
* Global numbers average over objects, not sequences: ``J&F-Mean = (mean_o J_o + mean_o F_o) / 2``.

The implementation is vectorised and crops every object to its bounding box before the boundary
dilation, which gives bit-identical numbers to full-frame processing (tests check this) at a
fraction of the cost.
"""

from __future__ import annotations

import csv
import math
import os
import struct
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from corr_core.data.labels import read_label_png
from corr_core.errors import DataError, ShapeMismatchError

VOID_LABEL = 255
DEFAULT_BOUND_TH = 0.008
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
OBJECT_KEYS = ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
MISSING_OBJECT_POLICIES = ("raise", "empty")

__all__ = [
    "GLOBAL_KEYS",
    "OBJECT_KEYS",
    "DavisResults",
    "ObjectResult",
    "Results",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "disk",
    "evaluate_davis",
    "evaluate_sequence",
    "f_measure",
    "score_frame",
    "seg2bmap",
]


# --------------------------------------------------------------------------------------------
# Per-frame primitives
# --------------------------------------------------------------------------------------------


def disk(radius: float) -> np.ndarray:
    """A flat disk structuring element, identical to ``skimage.morphology.disk(radius)``.

    Args:
        radius: the disk radius in pixels (the official code passes a float such as ``8.0``).

    Returns:
        ``(2r+1, 2r+1) uint8`` with 1 where ``x**2 + y**2 <= radius**2``.
    """
    offsets = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    return np.asarray(xx**2 + yy**2 <= radius**2, dtype=np.uint8)


@lru_cache(maxsize=32)
def _disk_cached(radius: float) -> np.ndarray:
    kernel = disk(radius)
    kernel.setflags(write=False)
    return kernel


def _bound_pix(shape: tuple[int, ...], bound_th: float) -> float:
    """Dilation radius: ``bound_th`` pixels if >= 1, else ``ceil(bound_th * diagonal)``."""
    if bound_th >= 1:
        return bound_th
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


def _boundary(seg: np.ndarray) -> np.ndarray:
    """One-pixel boundary bitmap of a boolean mask (the same-size case of :func:`seg2bmap`).

    A pixel is on the boundary when it differs from its right, lower or lower-right neighbour
    (outside the image counts as background); on the last row only the right neighbour counts, on
    the last column only the lower one, and the bottom-right pixel is never a boundary.
    """
    h, w = seg.shape
    b = np.zeros((h, w), dtype=bool)
    if h == 0 or w == 0:
        return b
    right = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    down = np.zeros_like(seg)
    down[:-1, :] = seg[1:, :]
    diag = np.zeros_like(seg)
    diag[:-1, :-1] = seg[1:, 1:]
    np.not_equal(seg, right, out=b)
    b |= seg != down
    b |= seg != diag
    b[-1, :] = seg[-1, :] != right[-1, :]
    b[:, -1] = seg[:, -1] != down[:, -1]
    b[-1, -1] = False
    return b


def seg2bmap(seg: np.ndarray, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Binary boundary map of a segmentation, as the official ``_seg2bmap`` (D. Martin, 2003).

    Boundaries are one pixel wide and offset half a pixel towards the origin. With ``width`` /
    ``height`` smaller than the mask, boundary pixels are re-indexed with the official formula
    ``(y, x) -> (y + floor(height / h), x + floor(width / h))`` into a ``(height, width)`` map.

    Args:
        seg: ``(H, W)`` mask or label map; every non-zero pixel is foreground.
        width: width of the output map, ``<= W`` (default ``W``).
        height: height of the output map, ``<= H`` (default ``H``).

    Returns:
        ``(height, width)`` bool boundary map.

    Raises:
        ShapeMismatchError: if ``seg`` is not 2-D or the requested size is larger than the mask or
            has a different aspect ratio (more than 0.01 apart), or the official re-indexing would
            fall outside the output map.
    """
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ShapeMismatchError(f"seg2bmap needs a 2-D mask, got shape {seg.shape}")
    seg = seg.astype(bool)
    h, w = seg.shape
    width = w if width is None else int(width)
    height = h if height is None else int(height)
    if width > w or height > h or abs(width / height - w / h) > 0.01:
        raise ShapeMismatchError(f"cannot convert a {w}x{h} segmentation to a {width}x{height} boundary map")
    b = _boundary(seg)
    if width == w and height == h:
        return b
    ys, xs = np.nonzero(b)
    rows = ys + math.floor(height / h)
    cols = xs + math.floor(width / h)  # the official code divides by h here as well
    if rows.size and (rows.max() >= height or cols.max() >= width):
        raise ShapeMismatchError(
            f"boundary of a {w}x{h} segmentation falls outside the requested {width}x{height} map"
        )
    bmap = np.zeros((height, width), dtype=bool)
    bmap[rows, cols] = True
    return bmap


def _f_from_boundaries(fg_b: np.ndarray, gt_b: np.ndarray, kernel: np.ndarray) -> float:
    """Boundary F from two boundary bitmaps of the same shape (official edge cases)."""
    n_fg = int(np.count_nonzero(fg_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        fg_dil = cv2.dilate(fg_b.view(np.uint8), kernel)
        gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel)
        fg_match = int(np.count_nonzero(gt_dil[fg_b]))
        gt_match = int(np.count_nonzero(fg_dil[gt_b]))
        precision = fg_match / float(n_fg)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _crop_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Bounding box of ``mask`` grown by one pixel on every side (clamped), or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)),
    )


def _score_object(gt: np.ndarray, pred: np.ndarray, kernel: np.ndarray) -> tuple[float, float]:
    """(J, F) of one object's boolean masks, computed on their joint bounding box.

    Cropping to the union's box plus a one-pixel margin gives exactly the boundary bitmaps of the
    full frame inside the box (and nothing outside), and the dilation outside the box never meets a
    boundary pixel, so the result equals the full-frame computation bit for bit.
    """
    box = _crop_box(gt | pred)
    if box is None:
        return 1.0, 1.0
    gt_c = gt[box]
    pred_c = pred[box]
    inter = np.count_nonzero(gt_c & pred_c)
    union = np.count_nonzero(gt_c | pred_c)
    j = inter / union
    f = _f_from_boundaries(_boundary(pred_c), _boundary(gt_c), kernel)
    return float(j), float(f)


def _check_same_shape(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.shape != b.shape:
        raise ShapeMismatchError(f"{what_a} has shape {a.shape} but {what_b} has shape {b.shape}")


def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: np.ndarray | None = None
) -> float | np.ndarray:
    """Region similarity J (Jaccard index) of binary masks, per frame.

    Args:
        annotation: ``(H, W)`` or ``(T, H, W)`` ground-truth mask (non-zero = object).
        segmentation: predicted mask, same shape.
        void_pixels: optional mask of pixels to ignore, same shape.

    Returns:
        A float for 2-D input, a ``(T,) float64`` array for 3-D input. Frames where the union is
        empty (object absent from both) score 1.

    Raises:
        ShapeMismatchError: if the shapes differ.
    """
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    _check_same_shape(annotation, segmentation, "annotation", "segmentation")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels).astype(bool)
        _check_same_shape(annotation, void_pixels, "annotation", "void_pixels")
        keep = ~void_pixels
        annotation = annotation & keep
        segmentation = segmentation & keep
    inter = np.count_nonzero(annotation & segmentation, axis=(-2, -1))
    union = np.count_nonzero(annotation | segmentation, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.asarray(inter / union, dtype=np.float64)
    j[union == 0] = 1.0
    return float(j) if j.ndim == 0 else j


def f_measure(
    foreground_mask: np.ndarray,
    gt_mask: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> float:
    """Boundary F-measure of one frame.

    Args:
        foreground_mask: ``(H, W)`` predicted mask (non-zero = object).
        gt_mask: ``(H, W)`` ground-truth mask.
        void_pixels: optional ``(H, W)`` mask of ignored pixels (removed from both masks).
        bound_th: match tolerance: pixels if >= 1, else a fraction of the image diagonal.

    Returns:
        F in [0, 1].
    """
    fg = np.asarray(foreground_mask).astype(bool)
    gt = np.asarray(gt_mask).astype(bool)
    if fg.ndim != 2:
        raise ShapeMismatchError(f"f_measure needs 2-D masks, got shape {fg.shape}")
    _check_same_shape(gt, fg, "gt_mask", "foreground_mask")
    if void_pixels is not None:
        void = np.asarray(void_pixels).astype(bool)
        _check_same_shape(gt, void, "gt_mask", "void_pixels")
        fg = fg & ~void
        gt = gt & ~void
    kernel = _disk_cached(_bound_pix(fg.shape, bound_th))
    box = _crop_box(fg | gt)
    if box is None:
        return 1.0
    return _f_from_boundaries(_boundary(fg[box]), _boundary(gt[box]), kernel)


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> float | np.ndarray:
    """Boundary accuracy F per frame.

    Args:
        annotation: ``(H, W)`` or ``(T, H, W)`` ground-truth mask.
        segmentation: predicted mask, same shape.
        void_pixels: optional ignored pixels, same shape.
        bound_th: match tolerance (see :func:`f_measure`).

    Returns:
        A float for 2-D input, a ``(T,) float64`` array for 3-D input.

    Raises:
        ShapeMismatchError: on different shapes or input that is neither 2-D nor 3-D.
    """
    annotation = np.asarray(annotation)
    segmentation = np.asarray(segmentation)
    _check_same_shape(annotation, segmentation, "annotation", "segmentation")
    if void_pixels is not None:
        void_pixels = np.asarray(void_pixels)
        _check_same_shape(annotation, void_pixels, "annotation", "void_pixels")
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void_pixels, bound_th=bound_th)
    if annotation.ndim == 3:
        return np.array(
            [
                f_measure(
                    segmentation[t], annotation[t], None if void_pixels is None else void_pixels[t], bound_th
                )
                for t in range(annotation.shape[0])
            ],
            dtype=np.float64,
        )
    raise ShapeMismatchError(f"db_eval_boundary supports 2-D or 3-D masks, got shape {annotation.shape}")


def db_statistics(per_frame: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean, recall and decay of per-frame scores, NaNs ignored as in the official code.

    * mean: ``nanmean``;
    * recall: fraction of frames scoring > 0.5 (a NaN frame counts as not recalled);
    * decay: mean of the first quarter minus mean of the last quarter, where the quarters are the
      official (MATLAB-derived) overlapping bins ``x[ids[i] : ids[i+1] + 1]`` with
      ``ids = round(linspace(1, n, 5)) - 1``.

    Args:
        per_frame: ``(N,)`` per-frame J or F values.

    Returns:
        ``(mean, recall, decay)``; NaN where undefined (no frames).
    """
    x = np.asarray(per_frame, dtype=np.float64).reshape(-1)
    n = x.size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(x)) if n else float("nan")
        recall = float(np.nanmean(x > 0.5)) if n else float("nan")
        if n == 0:
            return mean, recall, float("nan")
        ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
        first = x[ids[0] : ids[1] + 1]
        last = x[ids[3] : ids[4] + 1]
        decay = float(np.nanmean(first) - np.nanmean(last))
    return mean, recall, decay


def score_frame(
    gt: np.ndarray, pred: np.ndarray, n_objects: int, bound_th: float = DEFAULT_BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..n_objects`` in one frame of label maps.

    Args:
        gt: ``(H, W)`` integer ground-truth label map (void 255 already mapped to background).
        pred: ``(H, W)`` integer predicted label map.
        n_objects: number of objects to score.
        bound_th: boundary tolerance (see :func:`f_measure`).

    Returns:
        ``(J, F)``, each ``(n_objects,) float64``.

    Raises:
        ShapeMismatchError: if the two maps differ in shape.
    """
    _check_same_shape(gt, pred, "annotation", "prediction")
    kernel = _disk_cached(_bound_pix(gt.shape, bound_th))
    j = np.empty(n_objects, dtype=np.float64)
    f = np.empty(n_objects, dtype=np.float64)
    for k in range(n_objects):
        j[k], f[k] = _score_object(gt == k + 1, pred == k + 1, kernel)
    return j, f


# --------------------------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------------------------


def _stats_dict(j: np.ndarray, f: np.ndarray) -> dict[str, float]:
    jm, jr, jd = db_statistics(j)
    fm, fr, fd = db_statistics(f)
    return {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}


def _gt_labels(labels: np.ndarray) -> np.ndarray:
    """Ground truth with the void label mapped to background (official reader behaviour)."""
    labels = np.asarray(labels)
    if (labels == VOID_LABEL).any():
        labels = np.where(labels == VOID_LABEL, 0, labels)
    return labels


def _check_object_count(name: str, n_gt: int, n_pred: int, missing_objects: str) -> None:
    if n_pred > n_gt:
        raise ShapeMismatchError(
            f"sequence {name!r}: the predictions use object id {n_pred} but the first annotation frame "
            f"has {n_gt} object(s) (ids 1..{n_gt}); predictions must use the annotation's ids"
        )
    if n_pred < n_gt and missing_objects == "raise":
        raise ShapeMismatchError(
            f"sequence {name!r}: the predictions contain object ids up to {n_pred} but the first "
            f"annotation frame has {n_gt} object(s); the official evaluator refuses this "
            f"(use missing_objects='empty' to score absent objects as empty masks)"
        )


def _check_policy(missing_objects: str) -> None:
    if missing_objects not in MISSING_OBJECT_POLICIES:
        raise ValueError(f"missing_objects must be one of {MISSING_OBJECT_POLICIES}, got {missing_objects!r}")


def _label_max(labels: np.ndarray) -> int:
    return int(labels.max()) if labels.size else 0


def evaluate_sequence(
    gt_masks: np.ndarray | Sequence[np.ndarray],
    pred_masks: np.ndarray | Sequence[np.ndarray | None],
    name: str = "sequence",
    semi_supervised: bool = True,
    missing_objects: str = "raise",
    bound_th: float = DEFAULT_BOUND_TH,
) -> dict:
    """Scores one sequence of label maps the way the official semi-supervised evaluator does.

    Args:
        gt_masks: ``(T, H, W)`` integer annotation label maps (or a list of ``(H, W)`` maps), all
            frames including the first and last; 255 is void (counted as background).
        pred_masks: the predicted label maps, same length ``T``. In semi-supervised mode the first
            and last entries are not scored and may be None.
        name: sequence name, used in error messages and the result.
        semi_supervised: skip the first and last frame (the official semi-supervised protocol).
        missing_objects: ``"raise"`` (official: predictions must contain every object id at least
            once) or ``"empty"`` (an id never predicted is scored as an empty mask).
        bound_th: boundary tolerance (see :func:`f_measure`).

    Returns:
        ``{"sequence": name, "n_objects": n, "n_frames": frames scored, "objects": {id: {"J": (N,)
        array, "F": (N,) array, "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall",
        "F-Decay"}}}`` with object ids ``1..n`` where ``n`` is the largest id in the first
        annotation frame.

    Raises:
        ShapeMismatchError: if the sequences differ in length or frame size, or the predictions
            use an id above ``n`` (or, with ``missing_objects="raise"``, never reach ``n``).
        DataError: if there are no frames.
    """
    _check_policy(missing_objects)
    gts = list(gt_masks)
    preds = list(pred_masks)
    if not gts:
        raise DataError(f"sequence {name!r}: no annotation frames")
    if len(gts) != len(preds):
        raise ShapeMismatchError(
            f"sequence {name!r}: {len(gts)} annotation frames but {len(preds)} predicted frames"
        )
    first = _gt_labels(gts[0])
    if first.ndim != 2:
        raise ShapeMismatchError(f"sequence {name!r}: annotation frames must be 2-D, got shape {first.shape}")
    n_gt = _label_max(first)
    indices = range(1, len(gts) - 1) if semi_supervised else range(len(gts))
    j = np.zeros((n_gt, len(indices)), dtype=np.float64)
    f = np.zeros((n_gt, len(indices)), dtype=np.float64)
    n_pred = 0
    for col, t in enumerate(indices):
        gt = _gt_labels(gts[t])
        pred = preds[t]
        if pred is None:
            raise DataError(f"sequence {name!r}: no prediction for frame {t}")
        pred = np.asarray(pred)
        if pred.shape != gt.shape:
            raise ShapeMismatchError(
                f"sequence {name!r}, frame {t}: prediction has shape {pred.shape} "
                f"but the annotation has shape {gt.shape}"
            )
        n_pred = max(n_pred, _label_max(pred))
        j[:, col], f[:, col] = score_frame(gt, pred, n_gt, bound_th)
    _check_object_count(name, n_gt, n_pred, missing_objects)
    objects = {}
    for k in range(n_gt):
        objects[k + 1] = {"J": j[k], "F": f[k], **_stats_dict(j[k], f[k])}
    return {"sequence": name, "n_objects": n_gt, "n_frames": len(indices), "objects": objects}


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_png_unfiltered(data: bytes) -> np.ndarray | None:
    """Decodes an 8-bit palette/greyscale, non-interlaced PNG whose rows all use filter 0.

    That is what Pillow and most label writers produce for palette PNGs (every DAVIS annotation
    is one); decoding it is one ``zlib`` call and a reshape, several times faster than Pillow.

    Returns:
        ``(H, W) uint8`` pixel values (palette indices), or None when the file is anything else
        (the caller then falls back to Pillow, which also reports broken files).
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos = len(_PNG_SIGNATURE)
    header = None
    idat = []
    try:
        while pos + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos : pos + 8])
            body = data[pos + 8 : pos + 8 + length]
            pos += 12 + length
            if kind == b"IHDR":
                header = struct.unpack(">IIBBBBB", body)
            elif kind == b"IDAT":
                idat.append(body)
            elif kind == b"IEND":
                break
        if header is None or not idat:
            return None
        width, height, depth, colour, _, _, interlace = header
        if depth != 8 or colour not in (0, 3) or interlace != 0:
            return None
        raw = zlib.decompress(b"".join(idat))
    except (struct.error, zlib.error):
        return None
    if len(raw) != height * (width + 1):
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, width + 1)
    if rows[:, 0].any():
        return None  # filtered rows: leave them to Pillow
    return rows[:, 1:]


def read_label_map(path: str | Path) -> np.ndarray:
    """Reads a label PNG (palette or 8/16-bit greyscale) as the official evaluator does.

    Pixel values are the ids (``np.array(Image.open(path))``). Unfiltered 8-bit files take a fast
    path; everything else goes through :func:`corr_core.data.labels.read_label_png`.

    Returns:
        ``(H, W)`` ``uint8`` (``uint16`` for 16-bit PNGs).

    Raises:
        DataError: if the file is missing, unreadable or not a single-channel label image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""
    labels = _decode_png_unfiltered(data) if data else None
    if labels is None:
        labels = read_label_png(path, require_palette=False)
    return labels


@dataclass
class ObjectResult:
    """Per-frame scores and statistics of one object in one sequence."""

    sequence: str
    object_id: int
    frame_ids: list[str]
    J: np.ndarray
    F: np.ndarray
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``<sequence>_<id>``, the official per-object name."""
        return f"{self.sequence}_{self.object_id}"

    def row(self) -> dict:
        """One table row: sequence, object, J&F-Mean and the six per-object statistics."""
        return {
            "sequence": self.sequence,
            "object": self.object_id,
            "J&F-Mean": (self.stats["J-Mean"] + self.stats["F-Mean"]) / 2,
            **{k: self.stats[k] for k in OBJECT_KEYS},
        }


@dataclass
class DavisResults:
    """Result of :func:`evaluate_davis`: per-object scores and the global DAVIS numbers."""

    objects: list[ObjectResult]
    global_metrics: dict[str, float]
    sequences: list[str]
    n_frames: int
    seconds: float
    predicted_objects: dict[str, int] = field(default_factory=dict)
    missing_objects: dict[str, list[int]] = field(default_factory=dict)

    def per_object_rows(self) -> list[dict]:
        """Rows ``{sequence, object, J&F-Mean, J-Mean, ..., F-Decay}`` in evaluation order."""
        return [o.row() for o in self.objects]

    def object(self, sequence: str, object_id: int = 1) -> ObjectResult:
        """The result of one object; KeyError if it was not evaluated."""
        for o in self.objects:
            if o.sequence == sequence and o.object_id == object_id:
                return o
        raise KeyError(f"{sequence}_{object_id}")

    def to_dict(self) -> dict:
        """JSON-ready summary: global metrics, per-object rows and per-frame values."""
        return {
            "global": dict(self.global_metrics),
            "per_object": [
                {**o.row(), "frames": list(o.frame_ids), "J": o.J.tolist(), "F": o.F.tolist()}
                for o in self.objects
            ],
            "sequences": list(self.sequences),
            "n_objects": len(self.objects),
            "n_frames": self.n_frames,
            "seconds": self.seconds,
            "missing_objects": {k: list(v) for k, v in self.missing_objects.items()},
        }

    def table(self) -> str:
        """Plain-text tables: the global metrics, then one row per object."""
        lines = ["  ".join(f"{k:>9}" for k in GLOBAL_KEYS)]
        lines.append("  ".join(f"{self.global_metrics[k]:9.4f}" for k in GLOBAL_KEYS))
        lines.append("")
        width = max([len(o.name) for o in self.objects] + [8])
        lines.append(f"{'object':<{width}}  {'J&F-Mean':>9}  {'J-Mean':>9}  {'F-Mean':>9}")
        for row, o in zip(self.per_object_rows(), self.objects, strict=True):
            lines.append(
                f"{o.name:<{width}}  {row['J&F-Mean']:9.4f}  {row['J-Mean']:9.4f}  {row['F-Mean']:9.4f}"
            )
        return "\n".join(lines)

    def write_csv(self, per_sequence_path: str | Path, summary_path: str | Path) -> None:
        """Writes the per-object table and the one-row global summary as CSV files."""
        per_sequence_path = Path(per_sequence_path)
        per_sequence_path.parent.mkdir(parents=True, exist_ok=True)
        with open(per_sequence_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["sequence", "object", "J&F-Mean", *OBJECT_KEYS])
            for row in self.per_object_rows():
                writer.writerow(
                    [row["sequence"], row["object"], *(f"{row[k]:.6f}" for k in ("J&F-Mean", *OBJECT_KEYS))]
                )
        summary_path = Path(summary_path)
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        with open(summary_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(GLOBAL_KEYS)
            writer.writerow([f"{self.global_metrics[k]:.6f}" for k in GLOBAL_KEYS])


Results = DavisResults


def global_metrics(objects: Sequence[ObjectResult]) -> dict[str, float]:
    """The official global numbers: means over objects of the per-object statistics."""
    if not objects:
        return {k: float("nan") for k in GLOBAL_KEYS}
    out = {k: float(np.mean([o.stats[k] for o in objects])) for k in OBJECT_KEYS}
    return {"J&F-Mean": (out["J-Mean"] + out["F-Mean"]) / 2.0, **out}


def resolve_split(davis_root: str | Path, split: str | Path, year: str = "2016") -> Path:
    """Path of a split file: an existing file, or ``ImageSets/<year>/<split>.txt`` under the root.

    Other years present under ``ImageSets`` are tried after ``year``.

    Raises:
        DataError: if no such split file exists.
    """
    path = Path(split)
    if path.is_file():
        return path
    image_sets = Path(davis_root) / "ImageSets"
    name = path.name if path.suffix == ".txt" else f"{path.name}.txt"
    years = [str(year)]
    if image_sets.is_dir():
        years += sorted(p.name for p in image_sets.iterdir() if p.is_dir() and p.name != str(year))
    for y in years:
        candidate = image_sets / y / name
        if candidate.is_file():
            return candidate
    raise DataError(f"split {str(split)!r} is neither a file nor {image_sets}/<year>/{name}")


def read_split(path: str | Path) -> list[str]:
    """Sequence names listed in a split file (one per line; blank lines ignored)."""
    path = Path(path)
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise DataError(f"cannot read split file {path}: {exc}") from exc


def _sequence_names(
    davis_root: Path, split: str | Path | None, sequences: Iterable[str] | None, resolution: str, year: str
) -> list[str]:
    if sequences is not None:
        names = [sequences] if isinstance(sequences, str) else list(sequences)
    elif split is not None:
        names = read_split(resolve_split(davis_root, split, year))
    else:
        ann = davis_root / "Annotations" / resolution
        if not ann.is_dir():
            raise DataError(f"annotation folder not found: {ann}")
        names = sorted(p.name for p in ann.iterdir() if p.is_dir())
    if not names:
        raise DataError(f"no sequences to evaluate under {davis_root}")
    return names


def annotation_files(davis_root: str | Path, sequence: str, resolution: str = "480p") -> list[Path]:
    """Sorted annotation PNGs of a sequence; DataError if there are none or frames lack one.

    Like the official reader, every JPEG frame must have an annotation (when the JPEG folder
    exists), since the semi-supervised protocol scores every frame but the first and last.
    """
    root = Path(davis_root)
    folder = root / "Annotations" / resolution / sequence
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DataError(f"no annotation PNGs for sequence {sequence!r} in {folder}")
    jpegs = root / "JPEGImages" / resolution / sequence
    if jpegs.is_dir():
        n_img = len(list(jpegs.glob("*.jpg")))
        if n_img and n_img != len(files):
            raise DataError(
                f"sequence {sequence!r}: {n_img} frames in {jpegs} but {len(files)} annotations in {folder}; "
                "the semi-supervised evaluation needs an annotation for every frame"
            )
    return files


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def evaluate_files(
    sequences: dict[str, list[Path]],
    results_dir: str | Path,
    missing_objects: str = "raise",
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int | None = None,
) -> DavisResults:
    """Scores predictions ``results_dir/<seq>/<stem>.png`` against annotation files.

    Args:
        sequences: sequence name -> its sorted annotation PNGs (all frames).
        results_dir: folder with one sub-folder of palette/greyscale PNGs per sequence, named like
            the annotations; the first and last frame's predictions are not read.
        missing_objects: see :func:`evaluate_sequence`.
        bound_th: boundary tolerance.
        workers: threads reading and scoring frames (default: up to 4, the CPU count).

    Returns:
        :class:`DavisResults` with per-object and global metrics.

    Raises:
        DataError: a prediction PNG is missing or unreadable (the message names it).
        ShapeMismatchError: frame sizes or object ids disagree (the message names the sequence).
    """
    _check_policy(missing_objects)
    results_dir = Path(results_dir)
    start = time.perf_counter()
    workers = workers or _default_workers()
    tasks = []  # (sequence, column, gt path, pred path, n_gt)
    n_objects: dict[str, int] = {}
    frame_ids: dict[str, list[str]] = {}
    for seq, files in sequences.items():
        n_objects[seq] = _label_max(_gt_labels(read_label_map(files[0])))
        evaluated = files[1:-1]
        frame_ids[seq] = [p.stem for p in evaluated]
        for col, gt_path in enumerate(evaluated):
            tasks.append((seq, col, gt_path, results_dir / seq / f"{gt_path.stem}.png", n_objects[seq]))

    def run(task):
        seq, col, gt_path, pred_path, n_gt = task
        if not pred_path.is_file():
            raise DataError(f"sequence {seq!r}: prediction {pred_path} is missing")
        gt = _gt_labels(read_label_map(gt_path))
        pred = read_label_map(pred_path)
        if pred.shape != gt.shape:
            raise ShapeMismatchError(
                f"sequence {seq!r}: prediction {pred_path} has size {pred.shape} "
                f"but the annotation {gt_path} has size {gt.shape}"
            )
        j, f = score_frame(gt, pred, n_gt, bound_th)
        return seq, col, j, f, _label_max(pred)

    scores = {
        seq: (np.zeros((n, len(frame_ids[seq]))), np.zeros((n, len(frame_ids[seq]))))
        for seq, n in n_objects.items()
    }
    n_pred = dict.fromkeys(sequences, 0)
    if workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outputs = list(pool.map(run, tasks))
    else:
        outputs = [run(t) for t in tasks]
    for seq, col, j, f, pmax in outputs:
        scores[seq][0][:, col] = j
        scores[seq][1][:, col] = f
        n_pred[seq] = max(n_pred[seq], pmax)

    objects = []
    missing = {}
    for seq in sequences:
        _check_object_count(seq, n_objects[seq], n_pred[seq], missing_objects)
        if n_pred[seq] < n_objects[seq]:
            missing[seq] = list(range(n_pred[seq] + 1, n_objects[seq] + 1))
        js, fs = scores[seq]
        for k in range(n_objects[seq]):
            objects.append(ObjectResult(seq, k + 1, frame_ids[seq], js[k], fs[k], _stats_dict(js[k], fs[k])))
    return DavisResults(
        objects=objects,
        global_metrics=global_metrics(objects),
        sequences=list(sequences),
        n_frames=len(tasks),
        seconds=time.perf_counter() - start,
        predicted_objects=n_pred,
        missing_objects=missing,
    )


def evaluate_davis(
    davis_root: str | Path,
    results_dir: str | Path,
    split: str | Path | None = None,
    sequences: Iterable[str] | None = None,
    resolution: str = "480p",
    year: str = "2016",
    missing_objects: str = "raise",
    bound_th: float = DEFAULT_BOUND_TH,
    workers: int | None = None,
) -> DavisResults:
    """Scores a folder of predictions on a DAVIS-layout set (official semi-supervised protocol).

    Args:
        davis_root: folder with ``Annotations/<resolution>/<seq>/*.png`` (and ``ImageSets``).
        results_dir: predictions as ``<results_dir>/<seq>/<frame>.png`` label PNGs.
        split: split name (``dev480p``, ``train``, ``val`` -> ``ImageSets/<year>/<name>.txt``) or a
            split file; ignored when ``sequences`` is given; all annotated sequences when both are
            None.
        sequences: explicit sequence names.
        resolution: annotation resolution folder (``480p``, ``240p``, ``Full-Resolution``).
        year: ``ImageSets`` year tried first when resolving a split name.
        missing_objects: ``"raise"`` (official) or ``"empty"``; see :func:`evaluate_sequence`.
        bound_th: boundary tolerance.
        workers: scoring threads.

    Returns:
        :class:`DavisResults`; ``global_metrics`` holds J&F-Mean, J-Mean, J-Recall, J-Decay,
        F-Mean, F-Recall, F-Decay averaged over objects.

    Raises:
        DataError / ShapeMismatchError: naming the file or sequence at fault.
    """
    root = Path(davis_root)
    if not root.is_dir():
        raise DataError(f"DAVIS root not found: {root}")
    if not Path(results_dir).is_dir():
        raise DataError(f"predictions folder not found: {results_dir}")
    names = _sequence_names(root, split, sequences, resolution, year)
    files = {seq: annotation_files(root, seq, resolution) for seq in names}
    return evaluate_files(files, results_dir, missing_objects, bound_th, workers)
