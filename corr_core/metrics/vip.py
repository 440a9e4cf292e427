"""VIP (Video Instance-level Parsing) human-part propagation: mIoU over 20 classes.

The reference is the script every propagation paper uses (TimeCycle's ``eval_vip.py``, copied by
UVC as ``Liusifei/UVC/eval_vip.py`` and used by CRW):

* one ``20 x 20`` confusion histogram ``hist[gt, pred]`` accumulated with
  ``np.bincount(20 * gt + pred)`` over **every frame of every video** (no per-video averaging);
* pixels whose ground truth is outside ``0..19`` are ignored (``k = (gt >= 0) & (gt < n)``; VIP
  marks unlabelled pixels 255);
* per-class IoU ``= diag / (row sum + column sum - diag)``; mIoU ``= nanmean`` over the 20
  classes, so a class absent from both the ground truth and the predictions (0 / 0) is skipped,
  while a class only predicted scores 0 and counts;
* also overall pixel accuracy ``diag.sum() / hist.sum()``, mean class accuracy
  ``nanmean(diag / row sum)`` and frequency-weighted IoU ``sum(freq * IoU)`` over classes present
  in the ground truth.

Differences, both for inputs the reference mishandles: a predicted id outside ``0..19`` raises
:class:`~corr_core.errors.DataError` (the reference's ``bincount`` would shift it into another
class's cell or fail to reshape), and a prediction of a different size than its annotation is an
error unless resized with :func:`resize_labels_nearest` (the reference resizes with PIL's
``ANTIALIAS`` filter, which Pillow replaces by nearest for palette PNGs but which blends ids of
greyscale PNGs). Values are fractions in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from corr_core.data.labels import read_label_png
from corr_core.errors import ConfigError, DataError, ShapeMismatchError

NUM_CLASSES = 20
CLASSES = (
    "background",
    "hat",
    "hair",
    "sun-glasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "gloves",
    "scarf",
    "skirt",
    "torso-skin",
    "face",
    "right-arm",
    "left-arm",
    "right-leg",
    "left-leg",
    "right-shoe",
    "left-shoe",
)

__all__ = ["CLASSES", "NUM_CLASSES", "ConfusionHistogram", "evaluate_vip", "resize_labels_nearest"]


class ConfusionHistogram:
    """Confusion histogram ``hist[gt, pred]`` (pixel counts) pooled over all frames added.

    Args:
        num_classes: number of classes ``n`` (20 for VIP, background included); ground-truth
            values outside ``0..n-1`` are ignored.
        class_names: optional names for :meth:`summary`'s per-class entries.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, class_names: Sequence[str] | None = None) -> None:
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        if class_names is None:
            class_names = (
                CLASSES if self.num_classes == NUM_CLASSES else tuple(str(i) for i in range(self.num_classes))
            )
        if len(class_names) != self.num_classes:
            raise ConfigError(f"{len(class_names)} class names for {self.num_classes} classes")
        self.class_names = tuple(class_names)
        self.hist = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.num_frames = 0

    def add(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Adds one frame (or a stack of frames) of integer label maps.

        Args:
            gt: ``(H, W)`` (or any shape) ground-truth class ids; values outside ``0..n-1`` are
                ignored.
            pred: predicted class ids, same shape, all within ``0..n-1`` where ``gt`` is counted.

        Raises:
            ShapeMismatchError: if the shapes differ.
            DataError: if a counted prediction is outside ``0..n-1``.
        """
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise ShapeMismatchError(f"annotation has shape {gt.shape} but prediction has shape {pred.shape}")
        n = self.num_classes
        gt = gt.astype(np.int64, copy=False)
        keep = (gt >= 0) & (gt < n)
        g = gt[keep]
        p = pred[keep].astype(np.int64, copy=False)
        if p.size and (p.min() < 0 or p.max() >= n):
            bad = p[(p < 0) | (p >= n)][0]
            raise DataError(f"prediction holds class id {int(bad)} outside 0..{n - 1}")
        self.hist += np.bincount(n * g + p, minlength=n * n).reshape(n, n)
        self.num_frames += 1

    def merge(self, other: ConfusionHistogram) -> None:
        """Adds another histogram's counts (e.g. from a worker process)."""
        if other.num_classes != self.num_classes:
            raise ShapeMismatchError(
                f"cannot merge {other.num_classes}-class and {self.num_classes}-class histograms"
            )
        self.hist += other.hist
        self.num_frames += other.num_frames

    def iou(self) -> np.ndarray:
        """``(n,) float64`` per-class IoU ``diag / (row + col - diag)``; NaN for an absent class."""
        diag = np.diag(self.hist).astype(np.float64)
        union = self.hist.sum(axis=1) + self.hist.sum(axis=0) - diag
        with np.errstate(invalid="ignore", divide="ignore"):
            return diag / union

    def class_accuracy(self) -> np.ndarray:
        """``(n,) float64`` per-class pixel accuracy ``diag / row``; NaN for a class not in the GT."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.hist) / self.hist.sum(axis=1).astype(np.float64)

    def summary(self) -> dict[str, float | dict[str, float]]:
        """Metrics of the pooled histogram.

        Returns:
            ``{"mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU"}`` as floats (NaN when no pixel
            was counted), ``"per_class_iou"`` (name -> IoU), ``"num_frames"`` and
            ``"num_pixels"``.
        """
        total = self.hist.sum()
        iou = self.iou()
        acc = self.class_accuracy()
        freq = self.hist.sum(axis=1) / total if total else np.zeros(self.num_classes)
        present = freq > 0
        nan = float("nan")
        return {
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else nan,
            "pixel_accuracy": float(np.diag(self.hist).sum() / total) if total else nan,
            "mean_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else nan,
            "fwIoU": float((freq[present] * iou[present]).sum()) if total else nan,
            "per_class_iou": {name: float(v) for name, v in zip(self.class_names, iou, strict=True)},
            "num_frames": float(self.num_frames),
            "num_pixels": float(total),
        }


def resize_labels_nearest(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resizes an ``(h, w)`` label map to ``(H, W)`` with PIL's nearest filter.

    This is what the reference's ``Image.resize(..., ANTIALIAS)`` does to palette PNGs.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ShapeMismatchError(f"label map must be 2-D, got shape {labels.shape}")
    h, w = (int(v) for v in shape)
    if labels.shape == (h, w):
        return labels
    src = labels.astype(np.int32) if labels.dtype != np.uint8 else labels
    out = np.asarray(Image.fromarray(src).resize((w, h), Image.Resampling.NEAREST))
    return out.astype(labels.dtype, copy=False)


def evaluate_vip(
    gt_dir: str | Path,
    pred_dir: str | Path,
    num_classes: int = NUM_CLASSES,
    resize_mismatched: bool = False,
) -> dict[str, float | dict[str, float]]:
    """Scores a folder of predicted part maps against VIP's ``Category_ids`` annotations.

    As the reference, every PNG ``pred_dir/<video>/<name>.png`` is scored against
    ``gt_dir/<video>/<name>.png`` (so the frames scored are the frames predicted, the first one
    included when it is written), all pooled into one histogram.

    Args:
        gt_dir: folder of per-video folders of annotation PNGs (class id per pixel).
        pred_dir: folder of per-video folders of predicted PNGs (palette or 8/16-bit greyscale).
        num_classes: 20 for VIP.
        resize_mismatched: resize a prediction whose size differs from its annotation with
            :func:`resize_labels_nearest` instead of raising.

    Returns:
        :meth:`ConfusionHistogram.summary` of all frames.

    Raises:
        DataError: if a folder or a matching annotation is missing, no prediction is found, or a
            prediction holds an id outside the classes (the message names the file).
        ShapeMismatchError: on a size mismatch without ``resize_mismatched``.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d in (gt_dir, pred_dir):
        if not d.is_dir():
            raise DataError(f"VIP folder not found: {d}")
    preds = sorted(p for p in pred_dir.glob("*/*.png") if p.is_file())
    if not preds:
        raise DataError(f"no predicted PNG under {pred_dir}/<video>/")
    hist = ConfusionHistogram(num_classes)
    for pred_path in preds:
        gt_path = gt_dir / pred_path.parent.name / pred_path.name
        gt = read_label_png(gt_path, require_palette=False)
        pred = read_label_png(pred_path, require_palette=False)
        if pred.shape != gt.shape:
            if not resize_mismatched:
                raise ShapeMismatchError(
                    f"{pred_path} is {pred.shape} but its annotation {gt_path} is {gt.shape}"
                )
            pred = resize_labels_nearest(pred, gt.shape)
        try:
            hist.add(gt, pred)
        except DataError as exc:
            raise DataError(f"{pred_path}: {exc}") from exc
    return hist.summary()
