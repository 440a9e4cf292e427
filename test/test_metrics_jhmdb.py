"""JHMDB reader, keypoint label maps and PCK (CRW/UVC protocol), on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.io

from corr_core.data.jhmdb import (
    JOINT_NAMES,
    NUM_JOINTS,
    list_frames,
    load_joint_annotation,
    load_joint_positions,
    read_filelist,
)
from corr_core.errors import ConfigError, DataError, ShapeMismatchError
from corr_core.metrics.jhmdb import (
    PCKAccumulator,
    keypoints_to_label_maps,
    label_maps_to_keypoints,
    pck,
    reference_sizes,
)

E2 = math.exp(-2.0)  # Gaussian value one cell from the peak with sigma = 0.5: exp(-1 / (2 * 0.25))

# --------------------------------------------------------------------------------------------
# joint_positions.mat reader
# --------------------------------------------------------------------------------------------


def _pos_img(t: int, joints: int = NUM_JOINTS) -> np.ndarray:
    """(2, J, T) MATLAB-style (1-based) coordinates with distinct values: x = 1 + j + 100 t, y = 2 + 3 j + 100 t."""
    j = np.arange(joints)[:, None]
    k = np.arange(t)[None, :]
    return np.stack([1.0 + j + 100 * k, 2.0 + 3 * j + 100 * k])


def test_load_joint_positions_reads_pos_img_as_T_J_xy_zero_based(tmp_path):
    path = tmp_path / "joint_positions.mat"
    scipy.io.savemat(path, {"pos_img": _pos_img(4), "scale": np.full((1, 4), 1.5)})
    pos = load_joint_positions(path)
    assert pos.shape == (4, 15, 2)
    # joint 7 of frame 2 was saved at x = 1 + 7 + 200 = 208, y = 2 + 21 + 200 = 223 (1-based)
    np.testing.assert_array_equal(pos[2, 7], [207.0, 222.0])
    np.testing.assert_array_equal(load_joint_positions(path, zero_based=False)[2, 7], [208.0, 223.0])
    assert len(JOINT_NAMES) == NUM_JOINTS


def test_load_joint_annotation_reads_optional_fields(tmp_path):
    path = tmp_path / "joint_positions.mat"
    views = np.empty((1, 3), dtype=object)
    views[0, :] = ["E", "SE", "S"]
    scipy.io.savemat(
        path,
        {
            "pos_img": _pos_img(3),
            "pos_world": _pos_img(3) / 100,
            "scale": [[1.0, 2.0, 3.0]],
            "viewpoint": views,
        },
    )
    ann = load_joint_annotation(path)
    assert ann.num_frames == 3
    assert ann.viewpoint == ("E", "SE", "S")
    np.testing.assert_array_equal(ann.scale, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(ann.pos_world[1, 0], [1.01, 1.02])  # (1 + 100, 2 + 100) / 100, not shifted
    bare = tmp_path / "bare.mat"
    scipy.io.savemat(bare, {"pos_img": _pos_img(2)})
    assert load_joint_annotation(bare).scale is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"pos_world": _pos_img(3)}, "missing field 'pos_img'"),
        ({"pos_img": np.zeros((3, 15, 4))}, "(2, J, T)"),
        ({"pos_img": np.zeros((2, 14, 4))}, "15 joints"),
    ],
)
def test_malformed_joint_file_names_the_file(tmp_path, content, fragment):
    path = tmp_path / "bad_joints.mat"
    scipy.io.savemat(path, content)
    with pytest.raises(DataError) as err:
        load_joint_positions(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


def test_unreadable_or_missing_joint_file(tmp_path):
    junk = tmp_path / "junk.mat"
    junk.write_text("not a MATLAB file")
    with pytest.raises(DataError, match="junk.mat"):
        load_joint_positions(junk)
    with pytest.raises(DataError, match="nowhere.mat"):
        load_joint_positions(tmp_path / "nowhere.mat")


def test_frames_sorted_numerically_and_filelist_in_both_orders(tmp_path):
    frames = tmp_path / "Frames" / "run" / "v1"
    frames.mkdir(parents=True)
    for n in (10, 2, 1):
        (frames / f"{n:05d}.png").write_bytes(b"")
    (frames / "notes.txt").write_text("")
    assert [p.name for p in list_frames(frames)] == ["00001.png", "00002.png", "00010.png"]
    mat = tmp_path / "joints" / "joint_positions.mat"
    lst = tmp_path / "list.txt"
    lst.write_text(
        f"{frames} {mat}\n\n# comment\njoints/joint_positions.mat Frames/run/v1\nFrames/run/v1 joints\n"
    )
    videos = read_filelist(lst)
    assert [v.frames_dir for v in videos] == [frames, frames, frames]
    assert [v.joints_path for v in videos] == [mat, mat, mat]
    lst.write_text("only_one_column\n")
    with pytest.raises(DataError, match="list.txt:1"):
        read_filelist(lst)


# --------------------------------------------------------------------------------------------
# Label maps
# --------------------------------------------------------------------------------------------


def test_gaussian_label_map_window_and_values():
    # 64 x 64 image, 8 x 8 grid: pixel (24, 40) -> cell (x, y) = (24 * 8/64, 40 * 8/64) = (3, 5).
    maps = keypoints_to_label_maps(np.array([[24.0, 40.0]]), (64, 64), (8, 8))
    m = maps[0]
    assert maps.shape == (1, 8, 8) and maps.dtype == np.float32
    assert m[5, 3] == pytest.approx(1.0)  # un-normalised: peak 1
    for r, c in [(4, 3), (6, 3), (5, 2), (5, 4)]:
        assert m[r, c] == pytest.approx(E2, rel=1e-6)
    assert m[4, 4] == pytest.approx(math.exp(-4.0), rel=1e-6)  # diagonal: exp(-2 / 0.5)
    assert m[5, 1] == pytest.approx(math.exp(-8.0), rel=1e-5)  # window offsets are -2 .. +1 ...
    assert m[5, 5] == 0.0 and m[7, 3] == 0.0  # ... so nothing at +2
    # window = columns int(3 - 1.5) = 1 .. 4 and rows int(5 - 1.5) = 3 .. 6: 16 non-zero cells
    assert np.count_nonzero(m) == 16 and np.count_nonzero(m[3:7, 1:5]) == 16


def test_gaussian_peak_rounds_and_border_truncates_toward_zero():
    # cell (3.4, 5.6): peak at int(3.4 - 1.5) + 2 = 3, int(5.6 - 1.5) + 2 = 6
    m = keypoints_to_label_maps(np.array([[3.4, 5.6]]), (8, 8), (8, 8))[0]
    assert np.unravel_index(np.argmax(m), m.shape) == (6, 3)
    # cell (0.3, 0.3): int(-1.2) = -1 (truncation toward zero, as the reference) -> peak at -1 + 2 = 1
    m = keypoints_to_label_maps(np.array([[0.3, 0.3]]), (8, 8), (8, 8))[0]
    assert np.unravel_index(np.argmax(m), m.shape) == (1, 1)
    # far outside, or not finite: nothing drawn
    far = keypoints_to_label_maps(np.array([[-20.0, 3.0], [np.nan, 1.0]]), (8, 8), (8, 8))
    assert not far.any()


def test_background_channel_and_one_hot_mode():
    maps = keypoints_to_label_maps(np.array([[8.0, 8.0], [56.0, 8.0]]), (64, 64), (8, 8), add_background=True)
    assert maps.shape == (3, 8, 8)
    np.testing.assert_array_equal(maps[0], (maps[1:].sum(0) == 0).astype(np.float32))
    one_hot = keypoints_to_label_maps(np.array([[23.9, 40.0]]), (64, 64), (8, 8), sigma=0)
    # 23.9 / 8 = 2.99 -> int() = 2
    assert np.argwhere(one_hot[0]).tolist() == [[5, 2]]


def test_top3_weighted_readback_of_three_peaks():
    m = np.full((1, 5, 6), 0.5)
    m[0, 1, 1] = 4.0  # (x, y) = (1, 1)
    m[0, 2, 4] = 3.0  # (4, 2)
    m[0, 4, 2] = 1.0  # (2, 4)
    # weights 4/8, 3/8, 1/8: x = (4*1 + 3*4 + 1*2) / 8 = 2.25 cells, y = (4*1 + 3*2 + 1*4) / 8 = 1.75 cells
    # image 50 x 60 on a 5 x 6 grid: 10 px per cell -> (22.5, 17.5) px
    np.testing.assert_allclose(label_maps_to_keypoints(m, (50, 60)), [[22.5, 17.5]])
    # topk=1 takes the peak alone
    np.testing.assert_allclose(label_maps_to_keypoints(m, (50, 60), topk=1), [[10.0, 10.0]])
    # an all-zero map is "not visible"
    np.testing.assert_array_equal(label_maps_to_keypoints(np.zeros((1, 5, 6)), (50, 60)), [[-1.0, -1.0]])


def test_gaussian_round_trip_on_a_cell_and_anywhere():
    # pixel (24, 40) -> cell (3, 5). Top-3: the peak (1) and two of the four tied neighbours (exp(-2)),
    # the lowest flat indices: (row 4, col 3) and (row 5, col 2). Both pull by 1 cell with weight
    # e / (1 + 2e): x = 3 - e/(1+2e) = 2.8935, y = 5 - e/(1+2e) -> 0.1065 cell = 0.85 px off on each axis.
    shift = E2 / (1 + 2 * E2)
    maps = keypoints_to_label_maps(np.array([[24.0, 40.0]]), (64, 64), (8, 8))
    np.testing.assert_allclose(label_maps_to_keypoints(maps, (64, 64)), [[(3 - shift) * 8, (5 - shift) * 8]])
    # anywhere inside: the peak snaps to the nearest cell (<= 0.5 cell) plus that tie pull (< 0.11 cell)
    rng = np.random.default_rng(0)
    kps = rng.uniform(2 * 8, 14 * 8, size=(50, 2))  # 128 x 128 image, 16 x 16 grid, away from the border
    back = label_maps_to_keypoints(keypoints_to_label_maps(kps, (128, 128), (16, 16)), (128, 128))
    err_cells = np.abs(back - kps) / 8
    assert err_cells.max() <= 0.5 + shift + 1e-9
    assert err_cells.max() > 0.3  # the snapping is really there (not an exact inverse)


# --------------------------------------------------------------------------------------------
# PCK
# --------------------------------------------------------------------------------------------


def _two_joint_video() -> tuple[np.ndarray, np.ndarray]:
    gt = np.array(
        [
            [[0.0, 0.0], [30.0, 40.0]],  # frame 0 (the given annotation: never scored)
            [[0.0, 0.0], [30.0, 40.0]],  # frame 1: box diagonal 50 -> reference size 0.6 * 50 = 30
            [[10.0, 10.0], [70.0, 90.0]],  # frame 2: diagonal ||(60, 80)|| = 100 -> size 60
        ]
    )
    pred = np.array(
        [
            [[400.0, 400.0], [500.0, 500.0]],  # far off, but frame 0 is skipped
            [[3.0, 4.0], [30.0, 51.0]],  # errors 5 -> 5/30 = 0.167 ; 11 -> 11/30 = 0.367
            [[16.0, 18.0], [106.0, 138.0]],  # errors 10 -> 10/60 = 0.167 ; ||(36, 48)|| = 60 -> 1.0
        ]
    )
    return pred, gt


def test_reference_size_is_0p6_bbox_diagonal():
    _, gt = _two_joint_video()
    np.testing.assert_allclose(reference_sizes(gt), [30.0, 30.0, 60.0])


def test_pck_two_joints_three_frames():
    pred, gt = _two_joint_video()
    res = pck(pred, gt)
    # joint 0: normalised errors (0.167, 0.167) -> PCK 0 at 0.1, 1 from 0.2 on
    # joint 1: (0.367, 1.0)                     -> PCK 0 up to 0.3, 1/2 at 0.4 and 0.5
    # mean over the two joints:
    expected = {"PCK@0.1": 0.0, "PCK@0.2": 0.5, "PCK@0.3": 0.5, "PCK@0.4": 0.75, "PCK@0.5": 0.75}
    for key, value in expected.items():
        assert res[key] == pytest.approx(value), key
    assert res["num_counted"] == 4  # 2 joints x 2 scored frames


def test_pck_invisible_prediction_leaves_box_and_averages_per_joint():
    pred, gt = _two_joint_video()
    pred[2, 1] = [-1.0, -1.0]  # joint 1 not predicted in frame 2 (the reference's x < 0 rule)
    acc = PCKAccumulator()
    acc.add(pred, gt)
    # frame 2's box now holds joint 0 only: max starts at -1 and min at 1e6, so the box is the single
    # point (10, 10) -> size 0, joint 0's normalised error 10 / 0 = inf -> wrong at every threshold.
    # joint 0: (0.167, inf) -> 1/2 from 0.2 on ; joint 1: (0.367,) -> 1 from 0.4 on
    per_joint = acc.per_joint()
    np.testing.assert_allclose(per_joint[:, 0], [0.0, 0.5, 0.5, 0.5, 0.5])
    np.testing.assert_allclose(per_joint[:, 1], [0.0, 0.0, 0.0, 1.0, 1.0])
    # mean over joints at 0.4 is (0.5 + 1) / 2 = 0.75, not the pooled 2 correct / 3 counted = 0.667
    assert acc.summary()["PCK@0.4"] == pytest.approx(0.75)


def test_pck_pools_frames_of_all_videos_per_joint():
    gt = np.zeros((3, 1, 2))
    gt[:, 0] = [10.0, 10.0]
    gt_v = np.concatenate([gt, gt + [[[40.0, 30.0]]]], axis=1)  # second joint 50 px away: size 30
    good = gt_v.copy()
    bad = gt_v.copy()
    bad[1:, 0] += [[12.0, 0.0]]  # joint 0 off by 12/30 = 0.4 in frames 1 and 2
    acc = PCKAccumulator(thresholds=(0.2,))
    acc.add(good[:2], gt_v[:2])  # video A (2 frames): joint 0 right once
    acc.add(bad, gt_v)  # video B (3 frames): joint 0 wrong twice
    # joint 0 pooled: 1 correct of 3 -> 1/3 (a per-video mean would give (1 + 0) / 2); joint 1: 3 of 3
    assert acc.per_joint()[0].tolist() == pytest.approx([1 / 3, 1.0])
    assert acc.summary()["PCK@0.2"] == pytest.approx((1 / 3 + 1) / 2)
    assert acc.summary()["num_videos"] == 2


def test_pck_rejects_bad_input():
    pred, gt = _two_joint_video()
    with pytest.raises(ShapeMismatchError):
        pck(pred[:2], gt)
    with pytest.raises(ConfigError):
        pck(pred, gt, ref="torso")
    acc = PCKAccumulator()
    acc.add(pred, gt)
    with pytest.raises(ShapeMismatchError, match="joints"):
        acc.add(np.zeros((3, 3, 2)), np.zeros((3, 3, 2)))
