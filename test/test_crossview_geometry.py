"""Cross-view matching with calibrated cameras: the epipolar band, its checks, and what it does for
look-alikes on rendered sim episodes."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from corr_core.crossview.base import fit_geometry
from corr_core.crossview.baseline import ColourStatsMatcher
from corr_core.errors import ConfigError, DataError, ShapeMismatchError
from corr_core.evaluation.crossview import SimPoses, _lookalikes, evaluate_crossview, queries
from corr_core.geometry import (
    CameraPose,
    ViewGeometry,
    check_epipolar,
    epipolar_distance,
    epipolar_weights,
)
from corr_core.proposals.oracle import OracleProposer

SIZE = (120, 160)
K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])


def look_at(eye, target) -> np.ndarray:
    """Camera-to-world of an optical frame (z forward, y down) at ``eye`` looking at ``target``,
    world z up."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    T[:3, 3] = eye
    return T


def project(pose: CameraPose, point) -> np.ndarray:
    X = np.linalg.inv(pose.T_world_cam) @ np.r_[point, 1.0]
    uv = pose.K @ X[:3]
    return uv[:2] / uv[2]


def disc(size, centre, radius=4) -> np.ndarray:
    ys, xs = np.mgrid[: size[0], : size[1]]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius**2


# two cameras over a table (world z up), 90 degrees apart
SRC = CameraPose(K, look_at([0.8, 0, 0.6], [0, 0, 0]), SIZE)
TGT = CameraPose(K, look_at([0, 0.8, 0.6], [0, 0, 0]), SIZE)
OBJECT, TWIN = np.array([0.0, 0.0, 0.02]), np.array([0.2, 0.2, 0.02])
# a twin in the plane of both camera centres and the object: on the band, geometry's blind spot
ALIGNED = np.array([-0.12, 0.12, 0.02])


def test_the_band_passes_through_the_object_whatever_its_depth_and_misses_a_twin_elsewhere():
    mask = disc(SIZE, project(SRC, OBJECT))
    dist = epipolar_distance(ViewGeometry(SRC, TGT), mask)
    at = lambda p: dist[tuple(np.round(project(TGT, p)[::-1]).astype(int))]  # noqa: E731
    assert at(OBJECT) < 1.5
    assert at(TWIN) > 15
    assert at(ALIGNED) < 1.5
    # any point on the object's ray lies on the band, nearer or farther than the object
    ray = OBJECT - SRC.T_world_cam[:3, 3]
    assert at(SRC.T_world_cam[:3, 3] + 0.7 * ray) < 1.5 and at(SRC.T_world_cam[:3, 3] + 1.2 * ray) < 1.5
    # the same at half resolution: intrinsics rescaled, distances in half-size pixels
    half = ViewGeometry(SRC.at((60, 80)), TGT.at((60, 80)))
    small = epipolar_distance(half, disc((60, 80), project(half.src, OBJECT), 2))
    assert small[tuple(np.round(project(half.tgt, OBJECT)[::-1]).astype(int))] < 1.0
    # and weights: the object's mask near 1, the twin's near 0
    w = epipolar_weights(ViewGeometry(SRC, TGT), mask[None],
                         np.stack([disc(SIZE, project(TGT, OBJECT)), disc(SIZE, project(TGT, TWIN))]))
    assert w[0, 0] > 0.8 and w[0, 1] < 0.05


def test_source_depth_narrows_the_band_to_the_object_and_parts_twins_in_line_with_both_cameras():
    mask = disc(SIZE, project(SRC, OBJECT))
    depth = np.zeros(SIZE, np.float32)
    depth[mask] = (np.linalg.inv(SRC.T_world_cam) @ np.r_[OBJECT, 1.0])[2]  # metres along the optical axis
    plain = epipolar_distance(ViewGeometry(SRC, TGT), mask)
    rgbd = epipolar_distance(ViewGeometry(SRC, TGT, depth), mask)
    at = lambda d, p: d[tuple(np.round(project(TGT, p)[::-1]).astype(int))]  # noqa: E731
    assert at(plain, ALIGNED) < 1.5  # on the line ...
    assert at(rgbd, ALIGNED) > 5 and at(rgbd, OBJECT) < 1.5  # ... but not at the object's depth
    # unknown depth (0) on the object: the line again, not an error
    assert at(epipolar_distance(ViewGeometry(SRC, TGT, np.zeros(SIZE, np.float32)), mask), ALIGNED) < 1.5
    img = np.zeros((*SIZE, 3), np.uint8)
    with pytest.raises(ShapeMismatchError, match="source depth 80x60"):
        fit_geometry(ViewGeometry(SRC, TGT, np.zeros((60, 80), np.float32)), img, img)
    with pytest.raises(DataError, match="depth must be"):
        ViewGeometry(SRC, TGT, np.zeros((2, 60, 80), np.float32))


def test_an_object_behind_the_target_camera_has_no_band():
    away = CameraPose(K, look_at([0, 0.8, 0.6], [0, 2.0, 0.6]), SIZE)  # looks away from the table
    mask = disc(SIZE, project(SRC, OBJECT))
    assert np.isinf(epipolar_distance(ViewGeometry(SRC, away), mask, depth_range=(0.1, 1.5))).all()
    assert np.isinf(epipolar_distance(ViewGeometry(SRC, TGT), np.zeros(SIZE, bool))).all()


def test_bad_calibration_and_settings_are_named():
    with pytest.raises(DataError, match="fx, fy > 0"):
        CameraPose(np.diag([0.0, 100.0, 1.0]), np.eye(4), SIZE)
    reflect = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(DataError, match="not a rotation"):
        CameraPose(K, reflect, SIZE)
    with pytest.raises(DataError, match="4x4 rigid"):
        CameraPose(K, np.eye(4)[:3], SIZE)
    with pytest.raises(ConfigError, match="epipolar_sigma"):
        check_epipolar(0.0, (0.1, 1.0))
    with pytest.raises(ConfigError, match="near < far"):
        ColourStatsMatcher(OracleProposer(), depth_range=(2.0, 1.0))
    img = np.zeros((*SIZE, 3), np.uint8)
    with pytest.raises(DataError, match="ViewGeometry"):
        fit_geometry((SRC, TGT), img, img)
    with pytest.raises(DataError, match="no calibration for camera 'exo9'"):
        CameraPose.from_sim({"name": "episode_000", "cameras": {}}, "exo9", 0)


def test_a_calibration_error_moves_the_camera_by_what_was_asked():
    moved = TGT.perturbed(2.0, 0.05, np.random.default_rng(0))
    assert np.linalg.norm(moved.T_world_cam[:3, 3] - TGT.T_world_cam[:3, 3]) == pytest.approx(0.05)
    R = TGT.T_world_cam[:3, :3].T @ moved.T_world_cam[:3, :3]
    assert np.degrees(np.arccos((np.trace(R) - 1) / 2)) == pytest.approx(2.0, abs=1e-6)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    from corr_core.methods.pcc.scenes import sim_scenes
    from corr_core.testing import small_sim

    root = small_sim(tmp_path_factory.mktemp("geometry_sim"), seed=1003, episodes=3, frames=4, objects=5)
    return sim_scenes(root, resolution="128p")


class TruthProposals:
    """A proposer that answers each target image with its ground-truth objects (every object a
    proposal, look-alikes included), so that the choice among twins is the matcher's alone."""

    def __init__(self, scenes, directions) -> None:
        self.labels = {}
        for q in queries(scenes, directions, every=1):
            self.labels[hashlib.sha1(q.tgt_rgb.tobytes()).hexdigest()] = q.tgt_truth

    def propose(self, rgb):
        return OracleProposer().propose(rgb, labels=self.labels[hashlib.sha1(rgb.tobytes()).hexdigest()])


def test_rendered_twins_are_told_apart_by_geometry_and_not_by_colour(episodes):
    """Every object of the target a proposal, twins included: colour statistics alone cannot choose
    between twins; with the cameras' poses from the episodes' metadata the matcher picks the right
    one, and the right object's proposal lies on the band."""
    directions = [("ego", "exo1"), ("exo1", "ego")]
    assert any(_lookalikes(s) for s in episodes)
    matcher = ColourStatsMatcher(TruthProposals(episodes, directions))
    plain = evaluate_crossview(matcher, episodes, directions, every=1, resamples=10)
    geo = evaluate_crossview(matcher, episodes, directions, every=1, resamples=10, poses=SimPoses())
    n = sum(plain[d]["distractor"]["queries"] for d in ("ego->exo1", "exo1->ego"))
    right = {name: sum(r[d]["distractor"]["right"] for d in ("ego->exo1", "exo1->ego")) for name, r in
             (("plain", plain), ("geometry", geo))}
    assert n >= 4, "the episodes should hold look-alike queries"
    assert right["geometry"] >= 0.9 * n and right["geometry"] > right["plain"]
    for d in directions:
        key = f"{d[0]}->{d[1]}"
        assert geo[key]["iou"] >= plain[key]["iou"]
    # with the source camera's depth too (RGB-D), at least as many
    rgbd = evaluate_crossview(matcher, episodes, directions, every=1, resamples=10, poses=SimPoses(depth=True))
    assert sum(rgbd[d]["distractor"]["right"] for d in ("ego->exo1", "exo1->ego")) >= right["geometry"]
    # a calibration error of 2 degrees and 3 cm still keeps most twins apart
    rough = evaluate_crossview(matcher, episodes, directions, every=1, resamples=10, poses=SimPoses(2.0, 0.03))
    assert sum(rough[d]["distractor"]["right"] for d in ("ego->exo1", "exo1->ego")) >= 0.75 * n


def test_a_rig_file_gives_poses_and_waits_for_intrinsics(tmp_path):
    import yaml

    from corr_core.crossview.rig import CameraRig

    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump({"frame": "table", "cameras": {
        "ego": {"T_frame_cam": SRC.T_world_cam.tolist()},
        "exo1": {"T_frame_cam": TGT.T_world_cam.tolist(), "K": K.tolist(), "size": list(SIZE)}}}))
    rig = CameraRig.from_yaml(path)
    rig.check_cameras(["ego", "exo1"])
    assert rig.pair("ego", "exo1") is None  # ego's intrinsics not yet known (camera_info)
    with pytest.raises(DataError, match="fx, fy > 0"):
        rig.set_intrinsics("ego", [0.0] * 9, SIZE)  # an uncalibrated camera_info
    rig.set_intrinsics("ego", K.reshape(-1).tolist(), SIZE)
    pair = rig.pair("ego", "exo1")
    assert np.allclose(pair.src_to_tgt(), ViewGeometry(SRC, TGT).src_to_tgt())
    with pytest.raises(ConfigError, match=r"no pose for camera\(s\) \['exo2'\]"):
        rig.check_cameras(["ego", "exo1", "exo2"])


@pytest.mark.parametrize("content, error", [
    (None, "not found"),
    ("cameras: [ego, exo1]\n", "needs a 'cameras' mapping"),
    ("cameras: {ego: {K: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}\n", "camera 'ego' has no T_frame_cam"),
    ("cameras: {ego: {T_frame_cam: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}}\n", "camera 'ego'.*4x4 rigid"),
    ("cameras: {ego: {T_frame_cam: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "
     "K: [[100, 0, 50], [0, 100, 50], [0, 0, 1]]}}\n", "K needs size"),
    ("cameras: {ego: {T_frame_cam: [[1, 0, 0, 0], [0, 1, 0, 0]\n", "not valid YAML"),
])
def test_a_bad_rig_file_is_named_with_its_problem(tmp_path, content, error):
    from corr_core.crossview.rig import CameraRig

    path = tmp_path / "rig.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=error):
        CameraRig.from_yaml(path)


def test_eval_crossview_cli_with_geometry_and_its_misuse(episodes, tmp_path, capsys):
    from corr_core.cli import main as corr_main

    root = episodes[0].frames["ego"][0].parents[4]  # <root>/ego/JPEGImages/128p/<episode>/00000.jpg
    common = ["eval", "crossview", "--sim", str(root), "--resolution", "128p", "--colour-stats", "--no-overlays",
              "--every", "2"]
    assert corr_main([*common, "--geometry", "depth", "--pose-error", "1", "0.01", "--out", str(tmp_path / "a")]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    run = next(iter(metrics.values()))
    assert run["settings"]["geometry"] == {"rot_deg": 1.0, "trans_m": 0.01, "depth": True}
    assert run["ego->exo1"]["n_items"] > 0
    assert corr_main([*common, "--pose-error", "2", "0.03", "--out", str(tmp_path / "b")]) == 2
    assert "--pose-error needs --geometry" in capsys.readouterr().err
    assert corr_main([*common, "--geometry", "--pose-error", "2", "--out", str(tmp_path / "c")]) == 2
    assert "DEGREES METRES" in capsys.readouterr().err
    assert corr_main([*common, "--geometry", "--epipolar-sigma", "3", "--out", str(tmp_path / "d")]) == 2
    assert "epipolar_sigma must be in (0, 1]" in capsys.readouterr().err


def test_a_fitted_camera_projects_where_fit_size_moves_the_pixel():
    from corr_core.methods.pcc.scenes import fit_size

    img = np.zeros((*SIZE, 3), np.uint8)
    img[disc(SIZE, project(SRC, OBJECT), 3)] = 255
    for size in ((96, 96), (240, 320), (64, 160)):
        small = fit_size(img, size)
        ys, xs = np.nonzero(small[..., 0] > 127)
        assert np.allclose([xs.mean(), ys.mean()], project(SRC.fitted(size), OBJECT), atol=1.0), size


def test_pseudo_labels_with_geometry_pair_twins_right(episodes, tmp_path):
    """Colour statistics cannot tell twins apart, so cycle-consistent matches between ground-truth
    proposals pair some twins wrongly; the episodes' calibration weights them off."""
    from corr_core.methods.pcc.appearance import ColourStatsSimilarity
    from corr_core.methods.pcc.pseudolabel import ViewStore, label_pairs, pairs_for_labelling

    store = ViewStore(episodes, (128, 160), OracleProposer(), None)
    pairs = [p for p in pairs_for_labelling(episodes, every=1, temporal=False)]
    sim = ColourStatsSimilarity().similarity
    plain = label_pairs(pairs, store, sim, tmp_path / "plain")
    for mode in ("poses", "depth"):
        geo = label_pairs(pairs, store, sim, tmp_path / mode, geometry=mode)
        assert geo["with_geometry"] == len(pairs) and plain["with_geometry"] == 0
        wrong = lambda s: s["cross_view_with_truth"] - s["cross_view_correct"]  # noqa: E731
        assert geo["cross_view_correct"] >= plain["cross_view_correct"] and wrong(geo) < wrong(plain), (mode, geo, plain)
    with pytest.raises(ConfigError, match="pseudolabel.geometry must be one of"):
        label_pairs(pairs, store, sim, tmp_path / "bad", geometry="tf")


def test_the_pcc_matcher_uses_its_geometry_and_depth_thresholds_only_for_matches_with_them():
    from corr_core.crossview.matcher import CrossViewMatcher
    from corr_core.methods.pcc.model import build_pcc_model
    from corr_core.proposals.base import Proposals

    class Fixed:
        def __init__(self, masks):
            self.masks = masks

        def propose(self, rgb):
            return Proposals(self.masks, np.ones(len(self.masks), np.float32))

    src_mask, tgt_mask = disc(SIZE, project(SRC, OBJECT), 6), disc(SIZE, project(TGT, OBJECT), 6)
    img = np.full((*SIZE, 3), 90, np.uint8)
    src, tgt = img.copy(), img.copy()
    src[src_mask], tgt[tgt_mask] = (200, 40, 40), (200, 40, 40)
    matcher = CrossViewMatcher(build_pcc_model("pcc_tiny"), proposer=Fixed(tgt_mask[None]), max_side=160,
                               existence_threshold=0.999999, geometry_threshold=0.0, depth_threshold=0.999999,
                               verify="none")
    labels = src_mask.astype(np.uint16)
    plain = matcher.match(src, labels, tgt)
    geo = matcher.match(src, labels, tgt, geometry=ViewGeometry(SRC, TGT))
    with_depth = matcher.match(src, labels, tgt, geometry=ViewGeometry(SRC, TGT, np.full(SIZE, 1.0, np.float32)))
    assert plain.existence[1] is False and geo.existence[1] is True and with_depth.existence[1] is False
    assert geo.confidence[1] == pytest.approx(plain.confidence[1] * epipolar_weights(
        ViewGeometry(SRC, TGT), src_mask[None], tgt_mask[None])[0, 0], rel=1e-4)
    with pytest.raises(ConfigError, match="geometry_threshold"):
        CrossViewMatcher(build_pcc_model("pcc_tiny"), geometry_threshold=1.5)
    with pytest.raises(ConfigError, match="depth_threshold"):
        CrossViewMatcher(build_pcc_model("pcc_tiny"), depth_threshold=-0.1)
    assert CrossViewMatcher(build_pcc_model("pcc_tiny"), geometry_threshold=0.3).depth_threshold == 0.3


def test_remembered_predictions_run_the_network_once_for_images_poses_and_depth():
    from corr_core.crossview.matcher import CrossViewMatcher
    from corr_core.methods.pcc.model import build_pcc_model

    class Counting(CrossViewMatcher):
        calls = 0

        def _predict(self, *args):
            Counting.calls += 1
            return super()._predict(*args)

    src_mask = disc(SIZE, project(SRC, OBJECT), 6)
    img = np.full((*SIZE, 3), 90, np.uint8)
    img[src_mask] = (200, 40, 40)
    labels = src_mask.astype(np.uint16)
    matcher = Counting(build_pcc_model("pcc_tiny"), max_side=160)
    geometries = [None, ViewGeometry(SRC, TGT), ViewGeometry(SRC, TGT, np.full(SIZE, 1.0, np.float32))]
    plain = [matcher.match(img, labels, img, geometry=g) for g in geometries]
    assert Counting.calls == 3
    matcher.remember_predictions()
    kept = [matcher.match(img, labels, img, geometry=g) for g in geometries]
    assert Counting.calls == 4  # one network pass for the three
    for a, b in zip(plain, kept, strict=True):  # and the same answers
        assert np.array_equal(a.labels, b.labels) and a.confidence == pytest.approx(b.confidence)
    matcher.remember_predictions(False)
    matcher.match(img, labels, img)
    assert Counting.calls == 5


def test_the_multicamera_tracker_matches_again_with_the_rig_geometry_once_intrinsics_arrive():
    import torch
    import torch.nn.functional as F

    from corr_core.crossview.base import MatchResult
    from corr_core.crossview.multicam import MultiCameraTracker
    from corr_core.crossview.rig import CameraRig
    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    class Recording:
        """Finds every source object at its own place; remembers the geometry it was given."""

        def __init__(self):
            self.given = []

        def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
            self.given.append(geometry)
            res = MatchResult(src_labels.astype(np.uint16))
            for i in np.unique(src_labels)[1:]:
                res.masks[int(i)], res.existence[int(i)], res.confidence[int(i)] = src_labels == i, True, 0.9
            return res

    class Colour(torch.nn.Module):
        def forward(self, x):
            return F.avg_pool2d(x, 8, ceil_mode=True) * 2 - 1

    rig = CameraRig({"ego": SRC.T_world_cam, "exo1": TGT.T_world_cam}, {"exo1": (K, SIZE)})
    matcher = Recording()
    cfg = PropagationConfig(topk=5, context=2, radius=4.0)
    img = np.full((*SIZE, 3), 90, np.uint8)
    mask = disc(SIZE, project(SRC, OBJECT), 6).astype(np.uint16)
    img[mask > 0] = (200, 40, 40)  # an object the trackers keep
    multi = MultiCameraTracker({c: Tracker(Colour(), cfg) for c in ("ego", "exo1")}, matcher, "ego", rig=rig)
    multi.step({"ego": img, "exo1": img}, {"ego": mask})
    assert matcher.given == [None] and not multi.link.state["exo1"].geometry  # ego's camera_info not yet in
    multi.step({"ego": img, "exo1": img})
    assert len(matcher.given) == 1  # every object found: no match again without a reason
    rig.set_intrinsics("ego", K, SIZE)
    multi.step({"ego": img, "exo1": img})  # the geometry arrived: matched again with it, at once
    assert isinstance(matcher.given[-1], ViewGeometry) and multi.link.state["exo1"].geometry
    multi.step({"ego": img, "exo1": img})
    assert len(matcher.given) == 2  # and not again
    assert matcher.given[-1].src_depth is None and not multi.link.state["exo1"].depth
    depth = np.full(SIZE, 0.9, np.float32)  # an RGB-D anchor: its depth reaches the matcher's geometry
    multi.step({"ego": img, "exo1": img}, {"ego": mask}, anchor_depth=depth)  # new anchor masks: a match
    assert np.array_equal(matcher.given[-1].src_depth, depth) and multi.link.state["exo1"].depth
    with pytest.raises(ConfigError, match="no pose for camera"):
        MultiCameraTracker({c: Tracker(Colour(), cfg) for c in ("ego", "exo2")}, matcher, "ego", rig=rig)


def test_asking_for_depth_or_poses_an_episode_does_not_have_is_named(episodes):
    from dataclasses import replace

    no_depth = replace(episodes[0], depth={})
    with pytest.raises(DataError, match="no depth images for camera 'ego'"):
        SimPoses(depth=True).pair(no_depth, "ego", "exo1", 0)
    old = replace(episodes[0], meta={k: v for k, v in episodes[0].meta.items() if k != "cameras"})
    with pytest.raises(DataError, match="no calibration for camera 'ego'"):
        SimPoses().pair(old, "ego", "exo1", 0)
    with pytest.raises(DataError, match="pose error must be >= 0"):
        SimPoses(-1.0, 0.0)
