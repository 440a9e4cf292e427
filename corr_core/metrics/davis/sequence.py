"""DAVIS per-sequence scoring: per-object statistics (Mean, Recall, Decay) of per-frame J and F.

Official semi-supervised semantics: objects are the ids ``1..max(first annotation frame)``; the
first and last frames are not scored; annotation value 255 (void) counts as background. Per object
the per-frame values give Mean, Recall (fraction > 0.5) and Decay (mean of the first quarter minus
mean of the last quarter, the official overlapping quarters). Predictions must use exactly the
annotation's ids: an id above the object count is an error (the official script exits); a
prediction that never shows the highest id is an error too unless ``missing_objects="empty"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from corr_core.data.davis import void_to_background
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics.davis.frame import DEFAULT_BOUND_TH, score_frame

__all__ = ["MISSING_OBJECT_POLICIES", "db_statistics", "evaluate_sequence"]

MISSING_OBJECT_POLICIES = ("raise", "empty")


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


def stats_dict(j: np.ndarray, f: np.ndarray) -> dict[str, float]:
    """The six per-object statistics (J/F Mean, Recall, Decay) of per-frame ``(N,)`` J and F."""
    jm, jr, jd = db_statistics(j)
    fm, fr, fd = db_statistics(f)
    return {"J-Mean": jm, "J-Recall": jr, "J-Decay": jd, "F-Mean": fm, "F-Recall": fr, "F-Decay": fd}


def check_object_count(name: str, n_gt: int, n_pred: int, missing_objects: str) -> None:
    """Refuses predictions whose ids do not match the first annotation frame's (official rule)."""
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


def check_policy(missing_objects: str) -> None:
    """ValueError unless ``missing_objects`` is one of :data:`MISSING_OBJECT_POLICIES`."""
    if missing_objects not in MISSING_OBJECT_POLICIES:
        raise ValueError(f"missing_objects must be one of {MISSING_OBJECT_POLICIES}, got {missing_objects!r}")


def label_max(labels: np.ndarray) -> int:
    """The largest id of a label map (0 for an empty one)."""
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
    check_policy(missing_objects)
    gts = list(gt_masks)
    preds = list(pred_masks)
    if not gts:
        raise DataError(f"sequence {name!r}: no annotation frames")
    if len(gts) != len(preds):
        raise ShapeMismatchError(
            f"sequence {name!r}: {len(gts)} annotation frames but {len(preds)} predicted frames"
        )
    first = void_to_background(gts[0])
    if first.ndim != 2:
        raise ShapeMismatchError(f"sequence {name!r}: annotation frames must be 2-D, got shape {first.shape}")
    n_gt = label_max(first)
    indices = range(1, len(gts) - 1) if semi_supervised else range(len(gts))
    j = np.zeros((n_gt, len(indices)), dtype=np.float64)
    f = np.zeros((n_gt, len(indices)), dtype=np.float64)
    n_pred = 0
    for col, t in enumerate(indices):
        gt = void_to_background(gts[t])
        pred = preds[t]
        if pred is None:
            raise DataError(f"sequence {name!r}: no prediction for frame {t}")
        pred = np.asarray(pred)
        if pred.shape != gt.shape:
            raise ShapeMismatchError(
                f"sequence {name!r}, frame {t}: prediction has shape {pred.shape} "
                f"but the annotation has shape {gt.shape}"
            )
        n_pred = max(n_pred, label_max(pred))
        j[:, col], f[:, col] = score_frame(gt, pred, n_gt, bound_th)
    check_object_count(name, n_gt, n_pred, missing_objects)
    objects = {}
    for k in range(n_gt):
        objects[k + 1] = {"J": j[k], "F": f[k], **stats_dict(j[k], f[k])}
    return {"sequence": name, "n_objects": n_gt, "n_frames": len(indices), "objects": objects}

