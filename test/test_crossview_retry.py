"""A cross-view retry adds the objects a camera lacks and keeps the ones it tracks.

Before, a retry (an anchor object missing on a camera) re-anchored the camera on the matcher's
masks of *every* object, so a good track could be replaced by a worse match, and a retry that
found nothing ended the camera's track. ``Tracker.step(..., merge=True)`` and
``CrossViewLink.match(..., reason="missing")`` keep the tracked objects.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_crossview import boxes_view

from corr_core.crossview.base import MatchResult, check_inputs
from corr_core.crossview.multicam import MultiCameraTracker
from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.objects import merge_labels
from corr_core.propagation.tracker import Tracker


def boxes(origins, seed=0):
    """Coloured 16x16 boxes (on the stride-8 grid where the origins are) on a noisy 96x128 table."""
    return boxes_view(origins, size=(96, 128), seed=seed, box=(16, 16))


class Colour(torch.nn.Module):
    def forward(self, x):
        return F.avg_pool2d(x, 8, ceil_mode=True) * 2 - 1


def tracker():
    return Tracker(Colour(), PropagationConfig(topk=5, context=2, radius=4.0))


def test_merge_labels_adds_given_objects_only_where_no_other_tracked_object_is():
    tracked = np.zeros((4, 6), np.uint8)
    tracked[:, :2] = 1  # object 1, tracked
    tracked[0, 4] = 2  # object 2, a few stray pixels
    given = np.zeros((4, 6), np.uint16)
    given[:, 1:4] = 2  # object 2 as a match found it, overlapping object 1's column 1
    out = merge_labels(tracked, given)
    assert out.dtype == np.uint16
    assert (out[:, :2] == 1).all()  # object 1 keeps every pixel it held
    assert (out[:, 2:4] == 2).all() and out[0, 4] == 0  # object 2: its given pixels, its stray ones gone
    assert merge_labels(tracked, np.zeros_like(given)) is None  # nothing given
    assert merge_labels(tracked, np.where(tracked == 2, 2, 0).astype(np.uint8)) is None  # nothing changes
    only_on_1 = np.zeros_like(given)
    only_on_1[:, 0] = 3  # a new object wholly on object 1: nothing left for it
    assert merge_labels(tracked, only_on_1) is None


def test_a_merged_step_keeps_tracked_objects_and_tracks_the_added_one_after():
    img, truth = boxes([(8, 8), (48, 72)])  # on the stride-8 grid
    first = np.where(truth == 1, 1, 0).astype(np.uint16)
    trk = tracker()
    trk.step(img, first)
    plain = tracker()
    plain.step(img, first)
    nothing = plain.step(img)
    same = trk.step(img, np.zeros_like(truth), merge=True)  # nothing to add: a plain step
    np.testing.assert_array_equal(same, nothing)
    added = trk.step(img, np.where(truth == 2, 2, 0).astype(np.uint16), merge=True)
    assert set(np.unique(added)) == {0, 1, 2}
    np.testing.assert_array_equal(added == 1, plain.step(img) == 1)  # object 1 as tracked
    assert ((added == 2) == (truth == 2)).mean() > 0.99
    after = trk.step(img)
    assert trk.object_ids == (1, 2) and ((after == 2) & (truth == 2)).sum() > 0.8 * (truth == 2).sum()
    with pytest.raises(Exception, match="masks"):
        tracker().step(img, None, merge=True)  # the first frame still needs masks


class Scripted:
    """Answers with the target's true masks, except what it is told; counts calls."""

    def __init__(self, truth_of):
        self.truth_of, self.hidden, self.wrong, self.calls = truth_of, set(), {}, 0

    def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
        self.calls += 1
        truth = self.truth_of(tgt_rgb)
        res = MatchResult(np.zeros(truth.shape, np.uint16))
        for i in check_inputs(src_rgb, src_labels, tgt_rgb):
            mask = self.wrong.get(i, truth == i)
            seen = i not in self.hidden and bool(mask.any())
            res.masks[i] = mask if seen else np.zeros(truth.shape, bool)
            res.existence[i], res.confidence[i] = seen, (0.3 if i in self.wrong else 0.9) if seen else 0.1
            res.labels[res.masks[i]] = i
        return res


def two_views():
    """ego and exo1 views of objects 1 and 2, their truth, and a matcher answering from it."""
    ego, ego_truth = boxes([(8, 8), (48, 72)], seed=1)
    exo, exo_truth = boxes([(64, 96), (16, 32)], seed=2)
    truths = {ego.tobytes(): ego_truth, exo.tobytes(): exo_truth}
    return ego, ego_truth, exo, exo_truth, Scripted(lambda rgb: truths[rgb.tobytes()])


def test_a_retry_adds_the_missing_object_and_keeps_the_tracked_one():
    ego, ego_truth, exo, exo_truth, matcher = two_views()
    multi = MultiCameraTracker({"ego": tracker(), "exo1": tracker()}, matcher, anchor="ego", retry_every=2)
    frames = {"ego": ego, "exo1": exo}
    matcher.hidden = {2}
    first = multi.step(frames, {"ego": ego_truth})
    assert set(np.unique(first.labels["exo1"])) == {0, 1}
    tracked_1 = multi.step(frames).labels["exo1"] == 1
    matcher.hidden = set()
    wrong = np.zeros(exo_truth.shape, bool)
    wrong[0:16, 100:116] = True  # the retry's match puts object 1 on empty table
    matcher.wrong = {1: wrong}
    retry = multi.step(frames)
    assert retry.matched == ["exo1"] and matcher.calls == 2
    kept = retry.labels["exo1"] == 1  # object 1's track is kept, not the retry's mask
    assert not (kept & wrong).any() and (kept & tracked_1).sum() > 0.9 * tracked_1.sum()
    assert ((retry.labels["exo1"] == 2) == (exo_truth == 2)).mean() > 0.99  # object 2 added
    assert retry.objects[1]["exo1"]["confidence"] == 0.9  # from the match that placed it, not 0.3
    assert retry.objects[2]["exo1"] == {"visible": True, "confidence": 0.9, "area": 256}


def test_a_retry_that_finds_nothing_keeps_the_camera_tracking():
    ego, ego_truth, exo, exo_truth, matcher = two_views()
    multi = MultiCameraTracker({"ego": tracker(), "exo1": tracker()}, matcher, anchor="ego", retry_every=1)
    frames = {"ego": ego, "exo1": exo}
    matcher.hidden = {2}
    multi.step(frames, {"ego": ego_truth})
    matcher.hidden = {1, 2}  # the retry sees nothing at all
    retry = multi.step(frames)
    assert retry.matched == ["exo1"]
    assert ((retry.labels["exo1"] == 1) == (exo_truth == 1)).mean() > 0.99  # still tracked
    assert retry.objects[1]["exo1"]["visible"] and multi.trackers["exo1"].anchored


def test_the_node_s_processing_adds_a_missing_object_and_keeps_the_tracked_one():
    """The same through corr_node's SetProcessor (batched features, summary)."""
    from corr_core.crossview.multicam import CrossViewLink
    from corr_core.runtime.drops import DropCounter
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors, SyncedSet

    class Log:
        def __init__(self):
            self.lines = []

        def info(self, text):
            self.lines.append(text)

        warning = info

    class Header:
        frame_id = "cam"

    ego, ego_truth, exo, exo_truth, matcher = two_views()
    cams, log = ["ego", "exo1"], Log()
    model = Colour()
    link = CrossViewLink(matcher, "ego", cams, retry_every=2)
    proc = SetProcessor({c: Tracker(model, PropagationConfig(topk=5, context=2, radius=4.0)) for c in cams},
                        MaskAnchors(), {c: SizeGate() for c in cams}, DropCounter(log), log, link=link)
    proc.anchors.put("ego", 1, ego_truth)
    matcher.hidden = {2}

    def step(n):
        synced = SyncedSet(n, {"ego": Frame(Header(), ego, 0.0), "exo1": Frame(Header(), exo, 0.0)},
                           {"ego": n, "exo1": n})
        return proc.process(synced)

    first = step(1)
    assert set(np.unique(first.outputs["exo1"].labels)) == {0, 1}
    assert first.summary["cameras"]["exo1"]["match_reason"] == "new anchor"
    assert step(2).summary["cameras"]["exo1"]["match_reason"] == ""
    matcher.hidden = {1, 2}  # the first retry finds nothing: exo1 keeps tracking object 1
    out = step(3)
    assert out.summary["cameras"]["exo1"]["matched"] and not out.summary["cameras"]["exo1"]["reanchored"]
    assert out.summary["cameras"]["exo1"]["match_reason"] == "missing"
    tracked_1 = out.outputs["exo1"].labels == 1
    assert (tracked_1 == (exo_truth == 1)).mean() > 0.99
    step(4)
    matcher.hidden = set()
    wrong = np.zeros(exo_truth.shape, bool)
    wrong[0:16, 100:116] = True
    matcher.wrong = {1: wrong}  # the second finds object 2, and object 1 on empty table
    out = step(5)
    labels = out.outputs["exo1"].labels
    assert out.summary["cameras"]["exo1"]["matched"] and out.summary["cameras"]["exo1"]["reanchored"]
    assert not ((labels == 1) & wrong).any() and ((labels == 1) & tracked_1).sum() > 0.9 * tracked_1.sum()
    assert ((labels == 2) == (exo_truth == 2)).mean() > 0.99
    assert out.summary["objects"]["1"]["exo1"]["confidence"] == 0.9


def test_a_camera_resumed_from_matched_labels_is_matched_again_when_an_object_goes_missing():
    from corr_core.crossview.multicam import CrossViewLink

    link = CrossViewLink(matcher=None, anchor="ego", cameras=["ego", "exo1"], retry_every=1)
    anchor = np.zeros((4, 4), np.uint16)
    anchor[:2] = 1
    link.given("exo1")  # what the replayed set of a resumed run does with exo1's last labels
    link.end_set({"ego": anchor, "exo1": np.zeros((4, 4), np.uint16)}, (1,))
    assert not link.due("exo1", anchor, anchored=True, new_anchor=False)  # given masks are left alone
    link.resumed("exo1")
    link.end_set({"ego": anchor, "exo1": np.zeros((4, 4), np.uint16)}, (1,))
    assert link.due("exo1", anchor, anchored=True, new_anchor=False) == "missing"  # object 1 is missing on exo1
