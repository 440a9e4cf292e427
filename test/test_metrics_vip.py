"""VIP part-propagation mIoU: confusion histogram pooled over frames, on hand-worked toy frames."""

from __future__ import annotations

import numpy as np
import pytest

from corr_core.data.labels import write_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics.vip import (
    CLASSES,
    NUM_CLASSES,
    ConfusionHistogram,
    evaluate_vip,
    resize_labels_nearest,
)

# Two 2x2 frames, classes 0..2, 255 = unlabelled.
GT1, PRED1 = np.array([[0, 1], [1, 2]]), np.array([[0, 1], [2, 2]])
GT2, PRED2 = np.array([[1, 1], [255, 0]]), np.array([[1, 0], [2, 0]])
# (gt, pred) pairs: frame 1 (0,0) (1,1) (1,2) (2,2); frame 2 (1,1) (1,0) [255 ignored] (0,0)
# hist[gt, pred]:      pred 0  1  2   | row
#                gt 0:      2  0  0   |  2
#                gt 1:      1  2  1   |  4
#                gt 2:      0  0  1   |  1
#                col:       3  2  2   |  7 pixels counted
IOU = [2 / (2 + 3 - 2), 2 / (4 + 2 - 2), 1 / (1 + 2 - 1)]  # 2/3, 1/2, 1/2


def _toy_hist(num_classes: int = 3) -> ConfusionHistogram:
    hist = ConfusionHistogram(num_classes)
    hist.add(GT1, PRED1)
    hist.add(GT2, PRED2)
    return hist


def test_histogram_and_iou_by_hand():
    hist = _toy_hist()
    np.testing.assert_array_equal(hist.hist, [[2, 0, 0], [1, 2, 1], [0, 0, 1]])
    np.testing.assert_allclose(hist.iou(), IOU)
    s = hist.summary()
    assert s["mIoU"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)  # 0.5556
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)  # diagonal 2 + 2 + 1 over 7
    assert s["mean_accuracy"] == pytest.approx((2 / 2 + 2 / 4 + 1 / 1) / 3)
    assert s["fwIoU"] == pytest.approx(2 / 7 * 2 / 3 + 4 / 7 * 1 / 2 + 1 / 7 * 1 / 2)
    assert s["num_pixels"] == 7 and s["num_frames"] == 2


def test_absent_class_is_skipped_but_a_false_positive_class_counts():
    # class 3 appears nowhere: IoU 0/0 = NaN, left out of the nanmean -> same mIoU as with 3 classes
    hist = _toy_hist(num_classes=4)
    assert np.isnan(hist.iou()[3])
    assert hist.summary()["mIoU"] == pytest.approx(np.mean(IOU))
    # one more frame whose single pixel (gt 0) is predicted as 3: class 3 now has IoU 0/1 = 0 and counts
    hist.add(np.array([[0]]), np.array([[3]]))
    iou = hist.iou()
    # class 0: diag 2, row 3, col 3 -> 2/4 ; class 3: diag 0, row 0, col 1 -> 0
    assert iou[0] == pytest.approx(0.5) and iou[3] == 0.0
    assert hist.summary()["mIoU"] == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)


def test_pooling_over_frames_is_not_per_frame_averaging():
    hist = ConfusionHistogram(2)
    hist.add(np.zeros((10, 10), int), np.zeros((10, 10), int))  # 100 px of class 0, all right
    hist.add(np.ones((1, 1), int), np.zeros((1, 1), int))  # 1 px of class 1, predicted 0
    # pooled: class 0 IoU = 100 / 101, class 1 IoU = 0 / 1 -> mIoU = 0.495 (frame-averaged would differ)
    assert hist.summary()["mIoU"] == pytest.approx((100 / 101 + 0.0) / 2)


def test_default_twenty_classes_and_input_errors():
    hist = ConfusionHistogram()
    assert hist.num_classes == NUM_CLASSES == len(CLASSES) == 20
    assert hist.summary()["per_class_iou"].keys() == set(CLASSES)
    hist.add(np.array([[19, 255]]), np.array([[19, 200]]))  # the 255 pixel is ignored, its prediction too
    assert hist.hist[19, 19] == 1 and hist.hist.sum() == 1
    with pytest.raises(DataError, match="20"):
        hist.add(np.array([[1]]), np.array([[20]]))
    with pytest.raises(ShapeMismatchError):
        hist.add(np.zeros((2, 2), int), np.zeros((2, 3), int))


def test_evaluate_vip_folders(tmp_path):
    gt_dir, pred_dir = tmp_path / "Category_ids", tmp_path / "pred"
    for video, (gt, pred) in {"v1": (GT1, PRED1), "v2": (GT2, PRED2)}.items():
        write_label_png(gt_dir / video / "000000000001.png", gt)
        write_label_png(pred_dir / video / "000000000001.png", pred)
    s = evaluate_vip(gt_dir, pred_dir, num_classes=3)
    assert s["mIoU"] == pytest.approx(np.mean(IOU))
    # a prediction at twice the size is rejected, or resized nearest on request
    write_label_png(pred_dir / "v1" / "000000000001.png", np.kron(PRED1, np.ones((2, 2), int)))
    with pytest.raises(ShapeMismatchError, match="v1"):
        evaluate_vip(gt_dir, pred_dir, num_classes=3)
    assert evaluate_vip(gt_dir, pred_dir, num_classes=3, resize_mismatched=True)["mIoU"] == pytest.approx(
        np.mean(IOU)
    )
    # a prediction without annotation names the missing file
    write_label_png(pred_dir / "v3" / "000000000001.png", PRED1)
    with pytest.raises(DataError, match="Category_ids/v3"):
        evaluate_vip(gt_dir, pred_dir, num_classes=3, resize_mismatched=True)


def test_resize_labels_nearest_keeps_ids():
    lab = np.array([[0, 7], [19, 3]], dtype=np.uint8)
    up = resize_labels_nearest(lab, (4, 4))
    np.testing.assert_array_equal(up, np.kron(lab, np.ones((2, 2), np.uint8)))
    np.testing.assert_array_equal(resize_labels_nearest(up, (2, 2)), lab)
