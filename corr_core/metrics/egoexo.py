"""Ego-Exo4D correspondence metrics (ego->exo and exo->ego object masks across views).

The reference is the official relation-benchmark evaluation (``EGO4D/ego-exo4d-relation``,
``correspondence/evaluation/evaluate_egoexo.py``, ``evaluate_exoego.py``, ``utils.py``,
``metrics.py``). One *item* is a (take, object, target camera, frame) for which the source view
is annotated and the target camera's frame is annotated; its ground truth is the object's mask
in the target view, or nothing when the object is not visible there. What is computed:

* **Resolution.** The ground-truth mask is resized without padding so that its longer side is 480
  (``reshape_img_nopad``: ``ratio = 1. / max(H, W) * 480``, new size ``int(H * ratio) x
  int(W * ratio)`` -- this floating-point order makes the longer side 479 for some sizes, e.g. 9,
  and it is kept), with ``cv2.INTER_NEAREST``. The reference expects the prediction already at
  that size; here a prediction at any size of the same aspect ratio (within 1%) is resized to it
  the same way, which is the identical operation for a prediction at the original size.
* **Existence.** Predicted "exists" is ``confidence > 0.5``; ground-truth "exists" is whether an
  annotation is given for the item. **Balanced accuracy** is scikit-learn's
  ``balanced_accuracy_score`` over *all* items: the mean over the classes present in the ground
  truth of the recall of that class, i.e. ``(TPR + TNR) / 2`` when both occur, and just the
  recall of the one class present otherwise.
* **IoU, contour accuracy, location error** are computed only on items whose object exists in
  the ground truth, on the predicted mask *whatever the confidence* (an item with no mask counts
  as an empty prediction), and are micro-averaged (plain mean) over all such items of all takes:
  IoU ``= |G & P| / (|G | P| + 1e-7)``, 1 when the union is empty (DAVIS ``db_eval_iou`` as copied
  there); contour accuracy is the DAVIS boundary F (``db_eval_boundary``, ``bound_th = 0.008`` of
  the resized image's diagonal); the **location error** (the reference's "location score", lower
  is better) is the distance between the bounding-box centres of the two masks divided by
  ``sqrt(480**2 + 480**2)``, a box centre being ``((left + right) // 2, (top + bottom) // 2)``
  in integer pixels. **Empty masks**: the reference's ``compute_size_boundry_centroid`` gives an
  empty mask the centre ``(H // 2, W // 2)`` of the padded array it works on, *as (x, y)*, which
  in the mask's own coordinates is ``x = H // 2, y = W // 2`` (height and width swapped); this is
  reproduced, so an empty prediction scores the distance from the ground-truth centre to that
  point.

Use one :class:`EgoExoEvaluator` per direction (ego->exo, exo->ego); the reference reports them
separately.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from corr_core.data.labels import read_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics.davis import db_eval_boundary

EVAL_SIZE = 480
CONF_THRESH = 0.5
#: The location error's normaliser, ``sqrt(480**2 + 480**2)``, whatever the image's shape.
LOCATION_NORM = math.sqrt(EVAL_SIZE**2 + EVAL_SIZE**2)
_ASPECT_TOL = 0.01

__all__ = [
    "EgoExoEvaluator",
    "EgoExoItem",
    "balanced_accuracy",
    "box_centre",
    "eval_shape",
    "evaluate_pairs_json",
    "load_pairs_json",
    "location_error",
    "mask_iou",
    "resize_longest_nearest",
]


# --------------------------------------------------------------------------------------------
# Per-item primitives
# --------------------------------------------------------------------------------------------


def _as_mask(mask: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ShapeMismatchError(f"{what} must be a 2-D (H, W) mask, got shape {mask.shape}")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise ShapeMismatchError(f"{what} is empty (shape {mask.shape})")
    return (mask != 0).astype(np.uint8)


def eval_shape(shape: tuple[int, int], max_dim: int = EVAL_SIZE) -> tuple[int, int]:
    """``(H', W')`` of the reference's ``reshape_img_nopad`` for an ``(H, W)`` mask."""
    h, w = shape
    ratio = 1.0 / h * max_dim if h > w else 1.0 / w * max_dim
    return int(h * ratio), int(w * ratio)


def resize_longest_nearest(mask: np.ndarray, max_dim: int = EVAL_SIZE) -> np.ndarray:
    """Resizes a mask so its longer side is ``max_dim``, nearest neighbour (``reshape_img_nopad``).

    Returns:
        ``(H', W') uint8`` 0/1 mask.
    """
    mask = _as_mask(mask, "mask")
    h, w = eval_shape(mask.shape, max_dim)
    if (h, w) == mask.shape:
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def _fit_prediction(pred: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The prediction at the evaluation ``shape`` (empty when None), resized nearest if needed."""
    if pred is None:
        return np.zeros(shape, dtype=np.uint8)
    pred = _as_mask(pred, "predicted mask")
    if pred.shape == shape:
        return pred
    ph, pw = pred.shape
    h, w = shape
    if abs(pw / ph - w / h) > _ASPECT_TOL * (w / h):
        raise ShapeMismatchError(
            f"predicted mask is {ph}x{pw} but the ground truth is evaluated at {h}x{w}: the aspect ratios "
            "differ (a padded or cropped prediction?)"
        )
    return cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)


def mask_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU as the reference computes it: ``inter / (union + 1e-7)``, 1 when the union is empty."""
    g = np.asarray(gt) != 0
    p = np.asarray(pred) != 0
    if g.shape != p.shape:
        raise ShapeMismatchError(f"ground-truth mask has shape {g.shape} but prediction has shape {p.shape}")
    inter = int(np.count_nonzero(g & p))
    union = int(np.count_nonzero(g | p))
    return 1.0 if union == 0 else inter / (union + 1e-7)


def box_centre(mask: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` centre of a mask's bounding box, in integer pixels, as the reference.

    ``((left + right) // 2, (top + bottom) // 2)``; an empty ``(H, W)`` mask gives ``(H // 2, W // 2)``
    (the reference's swapped axes, module docstring).
    """
    m = np.asarray(mask) != 0
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        h, w = m.shape
        return h // 2, w // 2
    cols = np.flatnonzero(m.any(axis=0))
    return (int(cols[0]) + int(cols[-1])) // 2, (int(rows[0]) + int(rows[-1])) // 2


def location_error(gt: np.ndarray, pred: np.ndarray) -> float:
    """Distance between the two masks' box centres over ``sqrt(480**2 + 480**2)`` (lower is better)."""
    g = np.asarray(gt)
    p = np.asarray(pred)
    if g.shape != p.shape:
        raise ShapeMismatchError(f"ground-truth mask has shape {g.shape} but prediction has shape {p.shape}")
    gx, gy = box_centre(g)
    px, py = box_centre(p)
    return math.hypot(gx - px, gy - py) / LOCATION_NORM


def balanced_accuracy(gt_exists: np.ndarray, pred_exists: np.ndarray) -> float:
    """scikit-learn's ``balanced_accuracy_score`` for binary labels (no adjustment).

    Mean over the classes present in ``gt_exists`` of their recall; NaN for no item.
    """
    y = np.asarray(gt_exists, dtype=bool)
    p = np.asarray(pred_exists, dtype=bool)
    if y.shape != p.shape:
        raise ShapeMismatchError(
            f"ground-truth labels have shape {y.shape} but predictions have shape {p.shape}"
        )
    recalls = [float(np.mean(p[y == c] == c)) for c in (False, True) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


# --------------------------------------------------------------------------------------------
# Evaluator
# --------------------------------------------------------------------------------------------


class EgoExoEvaluator:
    """Accumulates items of one direction (ego->exo or exo->ego) and averages them as the reference.

    Args:
        conf_thresh: an object is predicted to exist when ``confidence > conf_thresh`` (0.5).
    """

    def __init__(self, conf_thresh: float = CONF_THRESH) -> None:
        self.conf_thresh = float(conf_thresh)
        self._keys: set[tuple[Hashable, ...]] = set()
        self.gt_exists: list[bool] = []
        self.pred_exists: list[bool] = []
        self.ious: list[float] = []
        self.contour_accuracies: list[float] = []
        self.location_errors: list[float] = []

    def add(
        self,
        take: Hashable,
        obj: Hashable,
        cam: Hashable,
        frame: Hashable,
        gt_mask: np.ndarray | None,
        pred_mask: np.ndarray | None,
        confidence: float,
    ) -> dict[str, float]:
        """Adds one item.

        Args:
            take, obj, cam, frame: the item's identity (target camera for ``cam``); each item once.
            gt_mask: ``(H, W)`` ground-truth mask (non-zero = object) at any resolution, or None
                when the object is not annotated in this view and frame (does not exist).
            pred_mask: the predicted mask, at the original or the evaluation resolution (or any
                size of the same aspect ratio), or None for an empty prediction.
            confidence: the predicted probability that the object exists in this view.

        Returns:
            The item's scores: ``{"gt_exists", "pred_exists"}`` and, when the object exists,
            ``{"iou", "contour_accuracy", "location_error"}``.

        Raises:
            DataError: if the item was added before.
            ShapeMismatchError: for a mask that is not 2-D or a prediction of another aspect ratio.
        """
        key = (take, obj, cam, frame)
        if key in self._keys:
            raise DataError(f"item take={take!r} object={obj!r} camera={cam!r} frame={frame!r} added twice")
        conf = float(confidence)
        scores: dict[str, float] = {
            "gt_exists": float(gt_mask is not None),
            "pred_exists": float(conf > self.conf_thresh),
        }
        if gt_mask is not None:
            gt = resize_longest_nearest(gt_mask)
            pred = _fit_prediction(pred_mask, gt.shape)
            scores["iou"] = mask_iou(gt, pred)
            scores["contour_accuracy"] = float(db_eval_boundary(gt, pred))
            scores["location_error"] = location_error(gt, pred)
            self.ious.append(scores["iou"])
            self.contour_accuracies.append(scores["contour_accuracy"])
            self.location_errors.append(scores["location_error"])
        self._keys.add(key)
        self.gt_exists.append(gt_mask is not None)
        self.pred_exists.append(conf > self.conf_thresh)
        return scores

    def __len__(self) -> int:
        return len(self.gt_exists)

    def summary(self) -> dict[str, float]:
        """Micro-averaged metrics over every item added.

        Returns:
            ``iou``, ``contour_accuracy``, ``location_error`` (means over items whose object exists;
            NaN when none), ``balanced_accuracy`` (over all items; NaN when none), ``tpr`` and
            ``tnr`` of existence (NaN when undefined), ``n_items`` and ``n_exist``.
        """
        nan = float("nan")
        y = np.asarray(self.gt_exists, dtype=bool)
        p = np.asarray(self.pred_exists, dtype=bool)
        return {
            "iou": float(np.mean(self.ious)) if self.ious else nan,
            "contour_accuracy": float(np.mean(self.contour_accuracies)) if self.ious else nan,
            "location_error": float(np.mean(self.location_errors)) if self.ious else nan,
            "balanced_accuracy": balanced_accuracy(y, p),
            "tpr": float(np.mean(p[y])) if y.any() else nan,
            "tnr": float(np.mean(~p[~y])) if (~y).any() else nan,
            "n_items": len(y),
            "n_exist": int(y.sum()),
        }


# --------------------------------------------------------------------------------------------
# Our JSON layout (masks as PNG files)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EgoExoItem:
    """One item of a pairs JSON (paths already resolved)."""

    take: str
    obj: str
    cam: str
    frame: str
    gt_mask: Path | None
    pred_mask: Path | None
    confidence: float


_ITEM_KEYS = {"take", "object", "camera", "frame", "gt_mask", "pred_mask", "confidence"}


def _item(path: Path, i: int, raw: object) -> EgoExoItem:
    where = f"{path}: items[{i}]"
    if not isinstance(raw, dict):
        raise DataError(f"{where} must be an object, got {type(raw).__name__}")
    missing = sorted({"take", "object", "camera", "frame", "confidence"} - raw.keys())
    if missing:
        raise DataError(f"{where} lacks {missing} (expected keys: {sorted(_ITEM_KEYS)})")
    for key in ("take", "object", "camera"):
        if not isinstance(raw[key], str):
            raise DataError(f"{where}.{key} must be a string, got {raw[key]!r}")
    frame = raw["frame"]
    if isinstance(frame, bool) or not isinstance(frame, (int, str)):
        raise DataError(f"{where}.frame must be an integer or a string, got {frame!r}")
    conf = raw["confidence"]
    if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf):
        raise DataError(f"{where}.confidence must be a finite number, got {conf!r}")
    masks = {}
    for key in ("gt_mask", "pred_mask"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}.{key} must be a PNG path or null, got {value!r}")
        masks[key] = (
            None if value is None else (Path(value) if Path(value).is_absolute() else path.parent / value)
        )
    return EgoExoItem(
        take=raw["take"],
        obj=raw["object"],
        cam=raw["camera"],
        frame=str(frame),
        gt_mask=masks["gt_mask"],
        pred_mask=masks["pred_mask"],
        confidence=float(conf),
    )


def load_pairs_json(path: str | Path) -> dict[str, list[EgoExoItem]]:
    """Reads our correspondence-evaluation JSON (masks as PNG paths).

    Layout (relative PNG paths are relative to the JSON file's folder; a null ``gt_mask`` means the
    object is not visible in that view, a null ``pred_mask`` an empty prediction)::

        {"ego-exo": [{"take": "t1", "object": "knife", "camera": "cam01", "frame": 30,
                      "gt_mask": "gt/t1/knife/cam01/30.png", "pred_mask": "pred/...png",
                      "confidence": 0.93}, ...],
         "exo-ego": [...]}

    Either direction may be absent.

    Returns:
        ``{"ego-exo": [EgoExoItem, ...], "exo-ego": [...]}`` for the directions present.

    Raises:
        DataError: if the file is missing or not JSON, or not of this form (the message names the
            file and the offending entry).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"correspondence JSON not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be an object with 'ego-exo' and/or 'exo-ego' lists")
    directions = [d for d in ("ego-exo", "exo-ego") if d in data]
    unknown = sorted(set(data) - {"ego-exo", "exo-ego", "version", "challenge"})
    if not directions or unknown:
        raise DataError(
            f"{path}: expected keys 'ego-exo' and/or 'exo-ego' (lists of items), got {sorted(data)}"
        )
    out = {}
    for d in directions:
        if not isinstance(data[d], list):
            raise DataError(f"{path}: '{d}' must be a list of items, got {type(data[d]).__name__}")
        out[d] = [_item(path, i, raw) for i, raw in enumerate(data[d])]
    return out


def _read_mask(path: Path | None) -> np.ndarray | None:
    return None if path is None else read_label_png(path, require_palette=False) != 0


def evaluate_pairs_json(path: str | Path) -> dict[str, dict[str, float]]:
    """Evaluates every direction of a pairs JSON (see :func:`load_pairs_json`).

    Returns:
        ``{"ego-exo": EgoExoEvaluator.summary(), "exo-ego": ...}`` for the directions present.

    Raises:
        DataError: for a malformed JSON, a missing/unreadable PNG, or a duplicated item.
    """
    results = {}
    for direction, items in load_pairs_json(path).items():
        ev = EgoExoEvaluator()
        for it in items:
            ev.add(
                it.take,
                it.obj,
                it.cam,
                it.frame,
                _read_mask(it.gt_mask),
                _read_mask(it.pred_mask),
                it.confidence,
            )
        results[direction] = ev.summary()
    return results
