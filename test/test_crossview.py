"""Cross-view matching: the matcher protocol's input checks, the feature baseline, PCC's matcher,
and the evaluation (EgoExo4D metrics and the look-alike test) on simulated episodes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corr_core.crossview.base import MatchResult, check_inputs, network_size
from corr_core.crossview.baseline import ColourStatsMatcher, FeatureMatcher
from corr_core.crossview.matcher import CrossViewMatcher
from corr_core.errors import ConfigError, DataError, ShapeMismatchError
from corr_core.evaluation.crossview import evaluate_crossview, write_report
from corr_core.methods.pcc.model import build_pcc_model
from corr_core.methods.pcc.scenes import read_rgb, sim_scenes
from corr_core.proposals import build_proposer

COLOURS = [(220, 40, 40), (40, 60, 220), (230, 210, 40)]


def boxes_view(origins: list[tuple[int, int]], size=(128, 160), seed=0, box=(20, 24)) -> tuple[np.ndarray, np.ndarray]:
    """Up to three coloured ``box``-sized boxes at ``origins`` on a noisy table: image and ids 1..n."""
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(0, 5, (*size, 3)) + np.array([90, 120, 90]), 0, 255)
    labels = np.zeros(size, np.uint16)
    for k, ((y, x), colour) in enumerate(zip(origins, COLOURS[: len(origins)], strict=True), 1):
        img[y : y + box[0], x : x + box[1]] = colour
        labels[y : y + box[0], x : x + box[1]] = k
    return img.astype(np.uint8), labels


class ColourFeatures(torch.nn.Module):
    """Stride-8 average colour: a feature network whose nearest neighbour is the colour."""

    stride, out_channels = 8, 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 8, ceil_mode=True) - 0.45


def test_inputs_are_checked_and_empty_sources_find_nothing():
    img, labels = boxes_view([(10, 10), (60, 40), (20, 100)])
    with pytest.raises(ShapeMismatchError, match="do not match the source image"):
        check_inputs(img, labels[:, :100], img)
    with pytest.raises(DataError, match="uint8"):
        check_inputs(img.astype(np.float32), labels, img)
    with pytest.raises(DataError, match="integer ids"):
        check_inputs(img, labels.astype(np.float32), img)
    with pytest.raises(ShapeMismatchError, match="too small"):
        check_inputs(img, labels, img[:8, :8])
    assert check_inputs(img, labels, img[:64]) == [1, 2, 3]  # cameras of other sizes are fine
    matcher = CrossViewMatcher(build_pcc_model("pcc_tiny"), max_side=160)
    empty = matcher.match(img, np.zeros_like(labels), img)
    assert isinstance(empty, MatchResult) and not empty.labels.any() and empty.existence == {}
    assert network_size(240, 320, 320) == (240, 320) and network_size(100, 333, 320, 16) == (96, 320)


BASELINES = {
    "features": lambda threshold: FeatureMatcher(ColourFeatures(), build_proposer("graph"), threshold=threshold),
    "colour statistics": lambda threshold: ColourStatsMatcher(build_proposer("graph"), threshold=threshold),
}


@pytest.mark.parametrize("baseline", sorted(BASELINES))
def test_nearest_neighbour_baselines_find_each_object_and_keep_ids(baseline):
    src, src_labels = boxes_view([(10, 10), (60, 40), (20, 100)], seed=1)
    tgt, tgt_labels = boxes_view([(70, 110), (15, 20), (90, 30)], seed=2)  # the objects moved
    src_labels = np.where(src_labels > 0, src_labels + 40, 0).astype(np.uint16)  # ids 41..43
    matcher = BASELINES[baseline](0.5)
    res = matcher.match(src, src_labels, tgt)
    assert res.labels.shape == tgt.shape[:2] and res.labels.dtype == np.uint16
    assert res.found == [41, 42, 43]
    for k in (1, 2, 3):
        pred, truth = res.labels == 40 + k, tgt_labels == k
        assert (pred & truth).sum() / (pred | truth).sum() > 0.8
    assert all(0.75 < c <= 1.0 + 1e-6 for c in res.confidence.values())  # (1 + cos) / 2 with cos > 0.5
    strict = BASELINES[baseline](1.5)
    assert strict.match(src, src_labels, tgt).found == []  # below the threshold: not visible


def test_pcc_matcher_returns_every_queried_id_and_snaps_to_proposals():
    torch.manual_seed(0)
    src, src_labels = boxes_view([(10, 10), (60, 40), (20, 100)], seed=1)
    tgt, _ = boxes_view([(70, 110), (15, 20), (90, 30)], seed=2)
    matcher = CrossViewMatcher(build_pcc_model("pcc_tiny"), proposer=build_proposer("graph"), max_side=160)
    res = matcher.match(src, src_labels, tgt)
    assert set(res.confidence) == {1, 2, 3} and res.labels.shape == tgt.shape[:2]
    assert all(0.0 <= c <= 1.0 for c in res.confidence.values())
    assert set(np.unique(res.labels)) <= {0, *res.found}
    props = np.zeros((2, 8, 8), bool)
    props[0, :4, :4], props[1, 4:, 4:] = True, True
    near = np.zeros((8, 8), bool)
    near[4:, 5:] = True  # IoU 0.75 with proposal 1
    assert np.array_equal(matcher._snap(near, props), props[1])
    far = np.zeros((8, 8), bool)
    far[0, 7] = True  # overlaps nothing: kept as predicted
    assert np.array_equal(matcher._snap(far, props), far)


def test_proposal_selection_takes_the_proposal_the_predicted_map_covers_not_the_largest():
    """select="proposal": soft IoU with the probability map, so a proposal holding the object and much
    more loses to the one that is the object; a weak map (nothing above threshold) still selects."""
    props = np.zeros((3, 10, 10), bool)
    props[0] = True  # the whole view
    props[1, 2:5, 2:5] = True  # the object
    props[2, 6:9, 6:9] = True  # another object
    prob = np.zeros((10, 10), np.float32)
    prob[2:5, 2:5] = 0.3  # below any threshold: "snap" would find no mask to snap
    assert CrossViewMatcher._soft_iou(prob[None], props).argmax() == 1
    prob[6:9, 6:9] = 0.6
    assert CrossViewMatcher._soft_iou(prob[None], props).argmax() == 2
    with pytest.raises(ConfigError, match="select"):
        CrossViewMatcher(build_pcc_model("pcc_tiny"), select="nearest")
    with pytest.raises(ConfigError, match="verify"):
        CrossViewMatcher(build_pcc_model("pcc_tiny"), verify="shape")


def test_one_to_one_gives_two_objects_that_want_one_proposal_different_ones():
    """Two source objects prefer proposal 0; one-to-one keeps the stronger claim there and sends the
    other to its next choice, where each object alone would take proposal 0."""
    score = np.array([[0.9, 0.2, 0.1], [0.8, 0.6, 0.0]])
    free = CrossViewMatcher(build_pcc_model("pcc_tiny"), one_to_one=False)
    assert free._assign(score).tolist() == [0, 0]
    paired = CrossViewMatcher(build_pcc_model("pcc_tiny"), one_to_one=True)
    assert paired._assign(score).tolist() == [0, 1]
    assert paired._assign(np.array([[0.9, 0.2], [0.8, 0.6], [0.7, 0.1]])).tolist() == [0, 1, 0]  # more objects


def test_colour_verification_lowers_the_confidence_of_a_match_whose_colours_disagree():
    """verify="colour": the same network and target, once holding the source object's colours and once
    the object in other colours; the confidence drops only in the second."""
    torch.manual_seed(0)
    src, src_labels = boxes_view([(10, 10), (60, 40), (20, 100)], seed=1)
    src_labels[src_labels > 1] = 0  # one query: box 1
    same = src.copy()
    other = src.copy()
    other[src_labels == 1] = 255 - other[src_labels == 1]  # the same shape, other colours
    plain = CrossViewMatcher(build_pcc_model("pcc_tiny"), proposer=build_proposer("graph"), max_side=160,
                             verify="none")
    checked = CrossViewMatcher(plain.model, proposer=build_proposer("graph"), max_side=160, verify="colour")
    for tgt in (same, other):
        assert plain.match(src, src_labels, tgt).confidence[1] >= checked.match(src, src_labels, tgt).confidence[1]
    assert checked.match(src, src_labels, same).confidence[1] > 2 * checked.match(src, src_labels, other).confidence[1]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    from corr_core.testing import small_sim

    return sim_scenes(small_sim(tmp_path_factory.mktemp("xview_sim")), resolution="128p")


class TruthMatcher:
    """Answers from the ground truth of the target view (or picks a look-alike instead)."""

    def __init__(self, scenes, lookalike: bool = False) -> None:
        from corr_core.data.labels import read_label_png
        from corr_core.evaluation.crossview import _lookalikes

        self.truth, self.twins = {}, {}
        for s in scenes:
            for cam in s.cameras:
                for t in range(s.num_frames):
                    key = hashlib.sha1(read_rgb(s.frames[cam][t]).tobytes()).hexdigest()
                    self.truth[key] = read_label_png(s.labels[cam][t])
                    self.twins[key] = _lookalikes(s)
        self.lookalike = lookalike

    def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
        key = hashlib.sha1(tgt_rgb.tobytes()).hexdigest()
        truth, twins = self.truth[key], self.twins[key]
        res = MatchResult(np.zeros(truth.shape, np.uint16))
        for i in check_inputs(src_rgb, src_labels, tgt_rgb):
            j = min(twins.get(i, {i})) if self.lookalike and twins.get(i) else i
            res.masks[i] = truth == j
            res.existence[i] = bool(res.masks[i].any())
            res.confidence[i] = float(res.existence[i])
            res.labels[res.masks[i]] = i
        return res


def test_evaluation_scores_a_perfect_matcher_perfectly_and_catches_look_alikes(episodes, tmp_path):
    directions = [("ego", "exo1"), ("exo1", "ego")]
    perfect = evaluate_crossview(TruthMatcher(episodes), episodes, directions, every=2, min_pixels=1,
                                 overlays=tmp_path / "ov", max_overlays=2, resamples=50)
    for d in ("ego->exo1", "exo1->ego"):
        r = perfect[d]
        assert r["n_items"] > 0 and r["iou"] == pytest.approx(1.0) and r["location_error"] == pytest.approx(0.0)
        assert r["ci95"]["iou"] == pytest.approx([1.0, 1.0])
        assert r["distractor"]["lookalike"] == 0 and r["distractor"]["right"] == r["distractor"]["queries"]
    assert sum(perfect[d]["distractor"]["queries"] for d in ("ego->exo1", "exo1->ego")) > 0
    assert len(list((tmp_path / "ov" / "ego_to_exo1").glob("*.jpg"))) == 2
    fooled = evaluate_crossview(TruthMatcher(episodes, lookalike=True), episodes, directions, every=2,
                                min_pixels=1, resamples=50)
    for d in ("ego->exo1", "exo1->ego"):
        dist = fooled[d]["distractor"]
        assert dist["right"] == 0 and dist["lookalike"] == dist["queries"]
        assert fooled[d]["iou"] < perfect[d]["iou"]
    table = write_report({"truth": perfect, "look-alike": fooled}, tmp_path / "report")
    assert "| truth | ego->exo1 | 1.000 (1.000..1.000)" in table
    assert (tmp_path / "report" / "metrics.json").is_file()


def test_existence_threshold_is_calibrated_on_tuning_episodes(episodes):
    from corr_core.evaluation.crossview import calibrate_existence

    thr, acc = calibrate_existence(TruthMatcher(episodes), episodes, [("ego", "exo1")], every=2, min_pixels=1)
    assert acc == 1.0 and 0.0 <= thr < 1.0


def test_scoring_after_calibrating_on_the_same_episodes_matches_each_query_once(episodes):
    """``ReplayMatcher`` (``corr pcc score``): the second pass is answered from the first one's
    record, with the same figures as matching again; other inputs go to the matcher."""
    from corr_core.evaluation.crossview import ReplayMatcher, calibrate_existence

    class Counting(TruthMatcher):
        calls = 0

        def match(self, *args, **kwargs):
            Counting.calls += 1
            return super().match(*args, **kwargs)

    direction = [("ego", "exo1")]
    replay = ReplayMatcher(Counting(episodes))
    thr, _ = calibrate_existence(replay, episodes, direction, every=2, min_pixels=1)
    first = Counting.calls
    replay.rewind()
    replayed = evaluate_crossview(replay, episodes, direction, every=2, min_pixels=1, conf_thresh=thr, resamples=10)
    assert first > 0 and Counting.calls == first  # nothing matched twice
    fresh = evaluate_crossview(TruthMatcher(episodes), episodes, direction, every=2, min_pixels=1, conf_thresh=thr,
                               resamples=10)
    for key in ("iou", "balanced_accuracy", "distractor"):
        assert replayed["ego->exo1"][key] == fresh["ego->exo1"][key]
    evaluate_crossview(replay, episodes, [("exo1", "ego")], every=2, min_pixels=1, conf_thresh=thr, resamples=10)
    assert Counting.calls > first  # queries it never saw are matched


# ------------------------------------------------------------------------ multi-camera tracking


class ScriptedMatcher:
    """Returns the target's true labels, minus the ids it is told are hidden; counts its calls."""

    def __init__(self, truth) -> None:
        self.truth, self.hidden, self.calls = truth, set(), 0

    def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
        self.calls += 1
        labels = self.truth(tgt_rgb).astype(np.uint16)
        res = MatchResult(np.zeros(labels.shape, np.uint16))
        for i in check_inputs(src_rgb, src_labels, tgt_rgb):
            seen = i not in self.hidden and bool((labels == i).any())
            res.masks[i] = (labels == i) if seen else np.zeros(labels.shape, bool)
            res.existence[i], res.confidence[i] = seen, 0.9 if seen else 0.1
            res.labels[res.masks[i]] = i
        return res


def test_multicamera_tracker_gives_anchor_ids_to_every_camera_and_rematches_when_needed():
    from corr_core.crossview.multicam import MultiCameraTracker
    from corr_core.errors import MissingCameraError
    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    class Colour(torch.nn.Module):
        def forward(self, x):
            return F.avg_pool2d(x, 8, ceil_mode=True) * 2 - 1

    ego_boxes, exo_boxes = [(10, 10), (60, 40), (20, 100)], [(70, 110), (15, 20), (90, 30)]
    views = {"ego": boxes_view(ego_boxes, seed=1), "exo1": boxes_view(exo_boxes, seed=2)}
    by_bytes = {v[0].tobytes(): v[1] for v in views.values()}
    matcher = ScriptedMatcher(lambda rgb: by_bytes[rgb.tobytes()])
    cfg = PropagationConfig(topk=5, context=2, radius=4.0)
    trackers = {cam: Tracker(Colour(), cfg) for cam in views}
    multi = MultiCameraTracker(trackers, matcher, anchor="ego", retry_every=3)
    frames = {cam: v[0] for cam, v in views.items()}
    ego_mask = np.where(views["ego"][1] == 3, 0, views["ego"][1])  # objects 1 and 2 given on ego only
    matcher.hidden = {2}  # object 2 cannot be seen from exo1 (at first)
    first = multi.step(frames, {"ego": ego_mask})
    assert first.matched == ["exo1"] and matcher.calls == 1
    assert set(np.unique(first.labels["exo1"])) == {0, 1}  # same id as on ego; 2 not found
    assert first.objects[2]["exo1"] == {"visible": False, "confidence": 0.1, "area": 0}
    assert first.objects[1]["exo1"]["visible"] and first.objects[1]["exo1"]["confidence"] == 0.9
    assert first.objects[1]["ego"]["confidence"] == 1.0
    matcher.hidden = set()
    for k in range(1, 4):  # object 2 missing on exo1: retried after retry_every sets, not before
        step = multi.step(frames)
        assert step.matched == ([] if k < 3 else ["exo1"])
    assert matcher.calls == 2 and step.objects[2]["exo1"]["visible"]
    assert multi.step(frames).matched == []  # nothing missing: tracking only
    full = multi.step(frames, {"ego": views["ego"][1]})  # a new object anchored later: matched at once
    assert full.matched == ["exo1"] and set(np.unique(full.labels["exo1"])) == {0, 1, 2, 3}
    exo_given = multi.step(frames, {"exo1": views["exo1"][1]})  # masks given on a camera: used as given
    assert exo_given.matched == [] and exo_given.objects[3]["exo1"]["confidence"] == 1.0
    with pytest.raises(MissingCameraError, match="exo1"):
        multi.step({"ego": frames["ego"]})
    lone = MultiCameraTracker({cam: Tracker(Colour(), cfg) for cam in views}, None, anchor="ego")
    alone = lone.step(frames, {"ego": ego_mask})
    assert alone.labels["exo1"] is None and alone.matched == []  # no matcher: cameras independent
