"""Ego-Exo4D correspondence metrics (official relation-benchmark rules), on hand-worked cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from corr_core.data.labels import write_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics.egoexo import (
    LOCATION_NORM,
    EgoExoEvaluator,
    balanced_accuracy,
    box_centre,
    eval_shape,
    evaluate_pairs_json,
    load_pairs_json,
    location_error,
    resize_longest_nearest,
)

DIAG = math.sqrt(480**2 + 480**2)  # 678.82


def _rect(shape, rows, cols) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    return m


def test_eval_resolution_longer_side_480_nearest():
    assert eval_shape((1080, 1920)) == (270, 480)
    assert eval_shape((1408, 1408)) == (480, 480)
    # the reference computes ratio = 1. / 9 * 480 = 53.33..; int(9 * ratio) = 479 in floating point
    assert eval_shape((9, 9)) == (479, 479)
    m = _rect((960, 1280), (100, 199), (0, 9))
    small = resize_longest_nearest(m)
    assert small.shape == (360, 480)
    # nearest at scale 1/(960/360) = 3/8: output row i reads input row floor(i * 8/3);
    # rows 100..199 are read by i = 38 (101.3) .. 74 (197.3) -> 37 rows
    assert np.flatnonzero(small.any(axis=1)).tolist() == list(range(38, 75))
    assert set(np.unique(small)) == {0, 1}


def test_balanced_accuracy_five_items():
    ev = EgoExoEvaluator()
    obj = _rect((480, 480), (0, 99), (0, 99))
    items = [  # (gt mask or None, confidence)
        (obj, 0.9),  # exists, predicted      -> TP
        (obj, 0.2),  # exists, not predicted  -> FN
        (obj, 0.7),  # exists, predicted      -> TP
        (None, 0.6),  # absent, predicted     -> FP
        (None, 0.5),  # absent, 0.5 is not > 0.5 -> TN
    ]
    for i, (gt, conf) in enumerate(items):
        ev.add("take", "obj", "cam", i, gt, obj, conf)
    s = ev.summary()
    # TPR = 2/3, TNR = 1/2 -> balanced accuracy (2/3 + 1/2) / 2 = 7/12 (plain accuracy would be 3/5)
    assert s["balanced_accuracy"] == pytest.approx(7 / 12)
    assert s["tpr"] == pytest.approx(2 / 3) and s["tnr"] == pytest.approx(0.5)
    assert s["n_items"] == 5 and s["n_exist"] == 3
    # the mask is scored whatever the confidence: all three existing items are perfect
    assert s["iou"] == pytest.approx(1.0) and s["contour_accuracy"] == 1.0 and s["location_error"] == 0.0


def test_balanced_accuracy_with_one_class_is_its_recall():
    # scikit-learn drops a class absent from the ground truth: only "exists" -> recall of it
    assert balanced_accuracy([True, True, True, True], [True, False, True, True]) == pytest.approx(0.75)
    assert math.isnan(balanced_accuracy([], []))


def test_iou_of_two_rectangles_and_contour_accuracy():
    gt = _rect((480, 480), (0, 99), (0, 99))  # 100 x 100 = 10000 px
    pred = _rect((480, 480), (50, 149), (0, 99))  # shifted 50 rows: overlap 50 x 100 = 5000
    ev = EgoExoEvaluator()
    scores = ev.add("t", "o", "c", 0, gt, pred, 1.0)
    # IoU = 5000 / (15000 + 1e-7) = 1/3 (to 1e-11)
    assert scores["iou"] == pytest.approx(1 / 3, abs=1e-9)
    # Boundary F, tolerance ceil(0.008 * 678.8) = 6 px. Boundary pixels (seg2bmap marks a pixel that differs
    # from its right / lower / lower-right neighbour):
    #   GT:   col 99 rows 0..99 + row 99 cols 0..98                             = 199 px (row 0 is the border)
    #   pred: row 49 cols 0..99 + col 99 rows 50..149 + row 149 cols 0..98        = 299 px
    # pred pixels within 6 px of GT's: (49, 93..99) = 7, (50..99, 99) = 50, (100..105, 99) = 6 -> 63
    # GT pixels within 6 px of pred's: (43..49, 99) = 7, (50..99, 99) = 50, (99, 93..98) = 6  -> 63
    # F = 2 P R / (P + R) with P = 63/299, R = 63/199 -> 2 * 63 / (299 + 199) = 0.2530
    assert scores["contour_accuracy"] == pytest.approx(126 / 498)
    # an empty prediction of an existing object: IoU 0, boundary F 0 (precision 1, recall 0)
    empty = ev.add("t", "o", "c", 1, gt, None, 0.0)
    assert empty["iou"] == 0.0 and empty["contour_accuracy"] == 0.0


def test_location_error_3_4_5_after_resize():
    # 960 x 960 masks -> 480 x 480 (nearest, factor 2: output row i reads input row 2 i).
    gt = _rect((960, 960), (100, 199), (100, 199))  # -> rows/cols 50..99, centre ((50 + 99) // 2) = 74
    pred = _rect((960, 960), (260, 359), (220, 319))  # -> rows 130..179 (centre 154), cols 110..159 (134)
    # centre offset (dx, dy) = (134 - 74, 154 - 74) = (60, 80): distance 100 -> 100 / sqrt(2 * 480^2)
    ev = EgoExoEvaluator()
    ev.add("t", "o", "c", 0, gt, pred, 1.0)
    assert ev.summary()["location_error"] == pytest.approx(100 / DIAG)
    assert LOCATION_NORM == pytest.approx(DIAG)
    # the prediction given at the evaluation size (480 x 480) scores the same
    ev2 = EgoExoEvaluator()
    ev2.add("t", "o", "c", 0, gt, resize_longest_nearest(pred), 1.0)
    assert ev2.summary()["location_error"] == pytest.approx(100 / DIAG)


def test_location_error_of_empty_prediction_uses_reference_centre():
    # 240 x 480 mask (already at the evaluation size). GT box rows 40..60, cols 90..110: centre (x, y) = (100, 50).
    gt = _rect((240, 480), (40, 60), (90, 110))
    assert box_centre(gt) == (100, 50)
    # the reference's centre of an empty (H, W) mask is (x, y) = (H // 2, W // 2) = (120, 240)
    assert box_centre(np.zeros((240, 480))) == (120, 240)
    # distance sqrt(20^2 + 190^2) = sqrt(36500) = 191.05
    assert location_error(gt, np.zeros_like(gt)) == pytest.approx(math.sqrt(36500) / DIAG)


def test_items_without_gt_do_not_enter_mask_metrics_and_errors():
    ev = EgoExoEvaluator()
    assert math.isnan(ev.summary()["iou"]) and ev.summary()["n_items"] == 0
    ev.add("t", "o", "c", 0, None, np.ones((480, 480)), 0.9)  # absent object: only existence is scored
    s = ev.summary()
    assert s["n_items"] == 1 and s["n_exist"] == 0 and math.isnan(s["iou"])
    with pytest.raises(DataError, match="added twice"):
        ev.add("t", "o", "c", 0, None, None, 0.1)
    with pytest.raises(ShapeMismatchError, match="aspect"):
        ev.add("t", "o", "c", 1, np.ones((270, 480)), np.ones((480, 480)), 0.9)  # a padded prediction


def _write_pairs(tmp_path, payload) -> object:
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(payload))
    return path


def test_pairs_json_round_trip(tmp_path):
    gt = _rect((480, 480), (0, 99), (0, 99))
    pred = _rect((480, 480), (50, 149), (0, 99))
    write_label_png(tmp_path / "gt" / "0.png", gt)
    write_label_png(tmp_path / "pred" / "0.png", pred)
    item = {"take": "t1", "object": "knife", "camera": "cam01", "frame": 0, "confidence": 0.9}
    path = _write_pairs(
        tmp_path,
        {
            "ego-exo": [
                {**item, "gt_mask": "gt/0.png", "pred_mask": "pred/0.png"},
                {**item, "frame": 1, "gt_mask": None, "pred_mask": None, "confidence": 0.1},
            ],
            "exo-ego": [
                {**item, "camera": "aria01", "gt_mask": "gt/0.png", "pred_mask": None, "confidence": 0.2}
            ],
        },
    )
    items = load_pairs_json(path)
    assert items["ego-exo"][0].gt_mask == tmp_path / "gt" / "0.png"
    res = evaluate_pairs_json(path)
    assert res["ego-exo"]["iou"] == pytest.approx(1 / 3, abs=1e-9)
    assert res["ego-exo"]["balanced_accuracy"] == pytest.approx(1.0)  # TP and TN
    assert res["exo-ego"]["iou"] == 0.0 and res["exo-ego"]["balanced_accuracy"] == 0.0  # one FN


@pytest.mark.parametrize(
    "payload",
    [
        [{"take": "t"}],  # top level is a list
        {"items": []},  # unknown key, no direction
        {"ego-exo": {"take": "t"}},  # direction is not a list
        {"ego-exo": [{"take": "t", "object": "o", "camera": "c", "frame": 0}]},  # no confidence
        {"ego-exo": [{"take": "t", "object": "o", "camera": "c", "frame": 0, "confidence": "high"}]},
        {"ego-exo": [{"take": "t", "object": "o", "camera": "c", "frame": 0, "confidence": 1, "gt_mask": 3}]},
    ],
)
def test_pairs_json_of_wrong_form_names_the_file(tmp_path, payload):
    path = _write_pairs(tmp_path, payload)
    with pytest.raises(DataError) as err:
        load_pairs_json(path)
    assert str(path) in str(err.value)


def test_pairs_json_not_json(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="pairs.json"):
        load_pairs_json(path)
