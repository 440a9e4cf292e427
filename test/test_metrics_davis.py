"""DAVIS J&F: reference values of the official evaluator, hand-worked cases, and internals."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from corr_core.data.labels import write_label_png
from corr_core.errors import DataError, ShapeMismatchError
from corr_core.metrics import davis as D
from corr_core.testing import REPO_ROOT, davis_dev_root, shared_data_dir

# The probe tool sits beside the shared data folder (``<shared>/tools``), wherever that folder is.
PROBE_TOOL = (shared_data_dir() or REPO_ROOT.parent / "shared" / "data").parent / "tools" / "make_probe_predictions.py"
TOL = 1e-6 + 5e-7  # the reference values are rounded to 6 decimals

# Official davis2017-evaluation numbers on DAVIS 2016 dev480p (bear, elephant, tennis).
REFERENCE = {
    "copyfirst": {
        "global": (0.432420, 0.495463, 0.369377, 0.667402, 0.069164, 0.152445, 0.128384),
        "objects": {
            "bear": (0.655159, 0.393297),
            "elephant": (0.641612, 0.456827),
            "tennis": (0.189620, 0.258008),
        },
    },
    "dilate7": {
        "global": (0.800686, 0.774046, 0.827326, 1.000000, -0.000070, 1.000000, 0.018382),
        "objects": {
            "bear": (0.832259, 0.869134),
            "elephant": (0.822012, 0.693156),
            "tennis": (0.667867, 0.919688),
        },
    },
    "shift": {
        "global": (0.613196, 0.696290, 0.530101, 0.906863, -0.029000, 0.616868, -0.056129),
        "objects": {
            "bear": (0.800086, 0.515829),
            "elephant": (0.748377, 0.498334),
            "tennis": (0.540408, 0.576140),
        },
    },
}
GLOBAL_ORDER = ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "J-Decay", "F-Recall", "F-Decay")


# ---------------------------------------------------------------------------------------------
# Reference values from the official evaluator
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    root = davis_dev_root()
    if root is None:
        pytest.skip("shared DAVIS data (davis2016-train) not found; set CORR_SHARED_DATA")
    split = root / "ImageSets" / "2016" / "dev480p.txt"
    if not split.is_file() or not PROBE_TOOL.is_file():
        pytest.skip(f"need {split} and {PROBE_TOOL}")
    out = tmp_path_factory.mktemp("probes")
    subprocess.run(
        [sys.executable, str(PROBE_TOOL), str(root), str(split), str(out)], check=True, timeout=120
    )
    return root, split, out


@pytest.mark.parametrize("probe", sorted(REFERENCE))
def test_probe_predictions_match_official_evaluator(probes, probe):
    root, split, out = probes
    res = D.evaluate_davis(root, out / probe, split=split)
    ref = REFERENCE[probe]
    for key, value in zip(GLOBAL_ORDER, ref["global"], strict=True):
        assert abs(res.global_metrics[key] - value) <= TOL, (probe, key, res.global_metrics[key], value)
    assert [o.name for o in res.objects] == ["bear_1", "elephant_1", "tennis_1"]
    for seq, (j_mean, f_mean) in ref["objects"].items():
        obj = res.object(seq, 1)
        assert abs(obj.stats["J-Mean"] - j_mean) <= TOL, (probe, seq)
        assert abs(obj.stats["F-Mean"] - f_mean) <= TOL, (probe, seq)
        # first and last frame are not scored
        n_ann = len(list((root / "Annotations" / "480p" / seq).glob("*.png")))
        assert obj.J.shape == obj.F.shape == (n_ann - 2,)
    assert res.n_frames == sum(len(o.J) for o in res.objects)


def test_split_name_and_sequence_list_give_the_same_numbers(probes):
    root, _, out = probes
    by_name = D.evaluate_davis(root, out / "shift", split="dev480p", workers=1)
    by_list = D.evaluate_davis(root, out / "shift", sequences=["bear", "elephant", "tennis"], workers=3)
    assert by_name.global_metrics == by_list.global_metrics


def test_prediction_with_an_extra_object_is_refused_naming_the_sequence(probes, tmp_path):
    root, _, out = probes
    pred = tmp_path / "pred"
    for seq in ("bear",):
        files = sorted((out / "dilate7" / seq).glob("*.png"))
        for i, f in enumerate(files):
            labels = np.array(Image.open(f))
            if i == 5:
                labels[:4, :4] = 2  # an id the first annotation frame does not have
            write_label_png(pred / seq / f.name, labels)
    with pytest.raises(ShapeMismatchError, match="'bear'.*object id 2"):
        D.evaluate_davis(root, pred, sequences=["bear"])


def test_missing_prediction_file_is_named(probes, tmp_path):
    root, _, out = probes
    pred = tmp_path / "pred"
    files = sorted((out / "shift" / "tennis").glob("*.png"))
    for f in files[:10]:
        (pred / "tennis").mkdir(parents=True, exist_ok=True)
        (pred / "tennis" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DataError, match="tennis.*00010.png"):
        D.evaluate_davis(root, pred, sequences=["tennis"])


# ---------------------------------------------------------------------------------------------
# Hand-worked cases
# ---------------------------------------------------------------------------------------------


def square(shape, top, left, size):
    m = np.zeros(shape, dtype=np.uint8)
    m[top : top + size, left : left + size] = 1
    return m


def test_iou_empty_perfect_and_one_pixel_shift():
    empty = np.zeros((20, 30), np.uint8)
    a = square((20, 30), 5, 5, 10)
    assert D.db_eval_iou(empty, empty) == 1.0  # official: object absent from both -> 1
    assert D.db_eval_iou(a, empty) == 0.0
    assert D.db_eval_iou(empty, a) == 0.0
    assert D.db_eval_iou(a, a) == 1.0
    b = square((20, 30), 5, 6, 10)  # one pixel to the right: 90 shared of 110 pixels
    assert D.db_eval_iou(a, b) == pytest.approx(90 / 110, abs=1e-15)
    batch = D.db_eval_iou(np.stack([a, a, empty]), np.stack([a, b, empty]))
    np.testing.assert_allclose(batch, [1.0, 90 / 110, 1.0])


def test_iou_void_pixels_are_ignored():
    a = square((20, 30), 5, 5, 10)
    b = square((20, 30), 5, 6, 10)
    void = np.zeros_like(a)
    void[:, 15] = 1  # the column only b covers: now 90 shared of 100
    assert D.db_eval_iou(a, b, void) == pytest.approx(0.9, abs=1e-15)


def test_boundary_f_edge_cases_and_identity():
    empty = np.zeros((100, 100), np.uint8)
    a = square((100, 100), 10, 10, 20)
    assert D.db_eval_boundary(empty, empty) == 1.0
    assert D.db_eval_boundary(a, empty) == 0.0
    assert D.db_eval_boundary(empty, a) == 0.0
    assert D.db_eval_boundary(a, a) == 1.0
    # diagonal 141.4 -> tolerance ceil(1.13) = 2 px: a one-pixel shift is still a perfect boundary
    assert D.db_eval_boundary(a, square((100, 100), 10, 11, 20)) == 1.0


def test_boundary_f_ten_pixel_shift_worked_by_hand():
    # A 20x20 square's bitmap boundary is the 80-pixel ring rows 9..29 x cols 9..29 (offset half a
    # pixel towards the origin). Shifted right by 10 px, with a 2 px disk, 30 of the 80 ring pixels
    # match: 13 on the top row (x = 19..31), 13 on the bottom row, 4 on the left column
    # (y = 10, 11, 27, 28), none on the right column. Precision = recall = F = 30/80.
    a = square((100, 100), 10, 10, 20)
    b = square((100, 100), 10, 20, 20)
    ring = D.seg2bmap(a)
    assert ring.sum() == 80 and ring[9, 9:30].all() and ring[29, 9:30].all() and ring[9:30, 29].all()
    assert D.db_eval_boundary(a, b) == pytest.approx(30 / 80, abs=1e-15)
    assert D.db_eval_iou(a, b) == pytest.approx(200 / 600, abs=1e-15)


def test_seg2bmap_image_edges_follow_official_convention():
    seg = np.zeros((4, 4), np.uint8)
    seg[3, :] = 1  # mask along the bottom edge: its edge with the outside is not a boundary
    expected = np.zeros((4, 4), bool)
    expected[2, :] = True
    np.testing.assert_array_equal(D.seg2bmap(seg), expected)
    seg = np.zeros((4, 4), np.uint8)
    seg[0, 0] = 1  # top-left pixel: boundary is the pixel itself only
    expected = np.zeros((4, 4), bool)
    expected[0, 0] = True
    np.testing.assert_array_equal(D.seg2bmap(seg), expected)


def test_seg2bmap_size_checks():
    seg = square((40, 60), 5, 5, 10)
    np.testing.assert_array_equal(D.seg2bmap(seg, width=60, height=40), D.seg2bmap(seg))
    with pytest.raises(ShapeMismatchError):
        D.seg2bmap(seg, width=80, height=40)
    with pytest.raises(ShapeMismatchError):
        D.seg2bmap(seg, width=30, height=40)  # aspect ratio differs
    # same aspect, smaller map: rows keep their index (floor(20/40) = 0), cols move by floor(30/40) = 0
    small = D.seg2bmap(seg, width=30, height=20)
    assert small.shape == (20, 30)
    np.testing.assert_array_equal(small, D.seg2bmap(seg)[:20, :30])


def test_disk_matches_skimage():
    from skimage.morphology import disk as sk_disk

    for radius in [0, 1, 2, 3, 5, 8, 8.0, 12, 2.5]:
        np.testing.assert_array_equal(D.disk(radius), sk_disk(radius).astype(np.uint8))


def test_statistics_use_the_official_overlapping_quarters():
    x = np.arange(8) / 10
    mean, recall, decay = D.db_statistics(x)
    assert mean == pytest.approx(0.35)
    assert recall == pytest.approx(2 / 8)
    # ids = round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]: first = x[0:3], last = x[5:8]
    assert decay == pytest.approx(0.1 - 0.6)  # np.array_split would give 0.05 - 0.65


def test_statistics_ignore_nans_like_official():
    mean, recall, decay = D.db_statistics([1.0, np.nan, 1.0, 0.0])
    assert mean == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 4)  # a NaN frame counts as not recalled
    assert decay == pytest.approx(1.0 - 0.5)  # bins x[0:2] (nanmean 1) and x[2:4]
    assert all(np.isnan(v) for v in D.db_statistics([]))
    assert D.db_statistics([0.7]) == (pytest.approx(0.7), 1.0, 0.0)


def test_evaluate_sequence_objects_void_and_trimming():
    h, w = 30, 40
    gt = np.zeros((4, h, w), np.uint8)
    gt[:, 2:12, 2:12] = 1
    gt[:, 15:25, 20:30] = 3  # ids 1 and 3: objects 1..3 are scored, object 2 absent everywhere
    gt[:, 0, :] = 255  # void row: background for the official evaluator
    pred = gt.copy()
    pred[:, 0, :] = 0
    pred[1, 2:12, 2:12] = 0
    pred[1, 2:12, 3:13] = 1  # frame 1: object 1 one pixel to the right
    pred[2, 0, :5] = 1  # frame 2: object 1 also covers 5 void pixels (counted as false positives)
    pred[0] = 0  # first and last frames are not scored
    pred[3] = 0
    res = D.evaluate_sequence(gt, pred, name="toy")
    assert res["n_objects"] == 3 and res["n_frames"] == 2
    np.testing.assert_allclose(res["objects"][1]["J"], [90 / 110, 100 / 105])
    np.testing.assert_allclose(res["objects"][2]["J"], [1.0, 1.0])
    np.testing.assert_allclose(res["objects"][3]["J"], [1.0, 1.0])
    np.testing.assert_allclose(res["objects"][3]["F"], [1.0, 1.0])
    assert res["objects"][1]["J-Mean"] == pytest.approx((90 / 110 + 100 / 105) / 2)


def test_evaluate_sequence_object_count_rules():
    gt = np.zeros((5, 20, 20), np.uint8)
    gt[:, 2:8, 2:8] = 1
    gt[:, 10:16, 10:16] = 2
    extra = gt.copy()
    extra[2, 0, 0] = 3
    with pytest.raises(ShapeMismatchError, match="'clip'.*object id 3"):
        D.evaluate_sequence(gt, extra, name="clip")
    lost = np.where(gt == 2, 0, gt)
    with pytest.raises(ShapeMismatchError, match="'clip'"):
        D.evaluate_sequence(gt, lost, name="clip")  # official: predicted object count must match
    res = D.evaluate_sequence(gt, lost, name="clip", missing_objects="empty")
    np.testing.assert_array_equal(res["objects"][2]["J"], np.zeros(3))
    np.testing.assert_array_equal(res["objects"][2]["F"], np.zeros(3))
    np.testing.assert_array_equal(res["objects"][1]["J"], np.ones(3))
    with pytest.raises(ShapeMismatchError, match="'clip'"):
        D.evaluate_sequence(gt, gt[:4], name="clip")
    with pytest.raises(ShapeMismatchError, match="'clip'"):
        D.evaluate_sequence(gt, [g[:, :10] for g in gt], name="clip")


# ---------------------------------------------------------------------------------------------
# The fast path equals a plain full-frame implementation
# ---------------------------------------------------------------------------------------------


def naive_boundary(seg):
    seg = seg.astype(bool)
    h, w = seg.shape
    pad = np.zeros((h + 1, w + 1), bool)
    pad[:h, :w] = seg
    right, down, diag = pad[:h, 1 : w + 1], pad[1 : h + 1, :w], pad[1 : h + 1, 1 : w + 1]
    b = (seg != right) | (seg != down) | (seg != diag)
    b[-1, :] = seg[-1, :] != right[-1, :]
    b[:, -1] = seg[:, -1] != down[:, -1]
    b[-1, -1] = False
    return b


def naive_f(pred, gt, bound_th=0.008):
    from skimage.morphology import disk as sk_disk

    r = np.ceil(bound_th * np.linalg.norm(pred.shape))
    fb, gb = naive_boundary(pred), naive_boundary(gt)
    se = sk_disk(r).astype(bool)
    fd = ndimage.binary_dilation(fb, structure=se)
    gd = ndimage.binary_dilation(gb, structure=se)
    nf, ng = fb.sum(), gb.sum()
    if nf == 0 and ng == 0:
        return 1.0
    if nf == 0 or ng == 0:
        return 0.0
    p, rc = (fb & gd).sum() / nf, (gb & fd).sum() / ng
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


def random_blobs(rng, shape, n):
    m = np.zeros(shape, np.uint8)
    for _ in range(n):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        ry, rx = rng.integers(1, shape[0] // 3), rng.integers(1, shape[1] // 3)
        cv2.ellipse(m, (int(cx), int(cy)), (int(rx), int(ry)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    if rng.random() < 0.3:
        m |= (rng.random(shape) < 0.02).astype(np.uint8)  # speckle
    return m


def test_cropped_fast_path_equals_full_frame_reference():
    rng = np.random.default_rng(1)
    for shape in [(48, 64), (120, 90), (240, 427), (7, 300)]:
        for _ in range(12):
            gt = random_blobs(rng, shape, int(rng.integers(0, 3)))
            pred = random_blobs(rng, shape, int(rng.integers(0, 3)))
            iou = np.logical_and(gt, pred).sum() / max(np.logical_or(gt, pred).sum(), 1)
            iou = 1.0 if not np.logical_or(gt, pred).any() else iou
            np.testing.assert_array_equal(D.seg2bmap(gt), naive_boundary(gt))
            assert D.db_eval_iou(gt, pred) == iou
            assert D.db_eval_boundary(gt, pred) == naive_f(pred, gt)
            j, f = D.score_frame(gt + 2 * pred * (gt == 0), pred, 1)  # labels: object 1 only in gt==1
            assert j[0] == iou and f[0] == naive_f(pred, gt)
