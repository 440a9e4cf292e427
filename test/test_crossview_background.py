"""Cross-view matches in the background (``SetProcessor(..., background=True)``, corr_node's
``crossview_background``): every camera keeps being tracked while a match runs, and the match's
masks are carried from the frame it matched to the set that takes it.

The matcher here answers from the target's true masks but only when the test lets it
(``threading.Event``), so the order of events is fixed without sleeping.
"""

from __future__ import annotations

import threading

import numpy as np
from test_crossview_retry import Colour, Scripted, boxes

from corr_core.crossview.multicam import CrossViewLink
from corr_core.propagation.config import PropagationConfig
from corr_core.propagation.tracker import Tracker
from corr_core.runtime.background import carry_forward
from corr_core.runtime.drops import DropCounter
from corr_core.runtime.frames import SizeGate
from corr_core.runtime.processing import Frame, SetProcessor
from corr_core.sync import MaskAnchors, SyncedSet

CAMS = ["ego", "exo1"]


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info


class Header:
    frame_id = "cam"


class Gated(Scripted):
    """A scripted matcher that waits for ``go`` before it answers (in the background thread)."""

    def __init__(self, truth_of):
        super().__init__(truth_of)
        self.go, self.started = threading.Event(), threading.Event()

    def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
        self.started.set()
        assert self.go.wait(30), "the test never let the match finish"
        return super().match(src_rgb, src_labels, tgt_rgb, geometry)


def moving_scene(steps):
    """ego (static) and exo1 frames where exo1's two boxes move 8 px right per set."""
    ego, ego_truth = boxes([(8, 8), (48, 72)], seed=1)
    exo = [boxes([(64, 16 + 8 * k), (16, 32 + 8 * k)], seed=2) for k in range(steps)]
    truths = {ego.tobytes(): ego_truth, **{img.tobytes(): truth for img, truth in exo}}
    return ego, ego_truth, exo, truths


def processor(matcher, background=True, max_match_frames=30):
    model = Colour()
    log = Log()
    link = CrossViewLink(matcher, "ego", CAMS, retry_every=2)
    trackers = {c: Tracker(model, PropagationConfig(topk=5, context=2, radius=4.0)) for c in CAMS}
    proc = SetProcessor(trackers, MaskAnchors(), {c: SizeGate() for c in CAMS}, DropCounter(log), log,
                        link=link, background=background, max_match_frames=max_match_frames)
    return proc, log


def run_set(proc, n, ego, exo):
    synced = SyncedSet(n, {"ego": Frame(Header(), ego, 0.0), "exo1": Frame(Header(), exo, 0.0)},
                       {"ego": n, "exo1": n})
    return proc.process(synced)


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_a_background_match_lets_the_sets_go_on_and_lands_on_the_current_frame():
    ego, ego_truth, exo, truths = moving_scene(4)
    matcher = Gated(lambda rgb: truths[rgb.tobytes()])
    proc, log = processor(matcher)
    proc.anchors.put("ego", 1, ego_truth)
    first = run_set(proc, 1, ego, exo[0][0])  # the match starts; ego is tracked, exo1 waits
    assert "ego" in first.outputs and "exo1" not in first.outputs
    assert first.summary["skipped"]["exo1"] == "cross-view match under way"
    assert matcher.started.wait(30)
    second = run_set(proc, 2, ego, exo[1][0])  # the match still runs: the set is not held up
    assert "exo1" not in second.outputs and proc.background.busy("exo1")
    matcher.go.set()
    proc.background.pending["exo1"].future.result(30)
    third = run_set(proc, 3, ego, exo[2][0])  # taken here: carried from set 1's frame to set 3's
    labels, truth = third.outputs["exo1"].labels, exo[2][1]
    assert third.summary["cameras"]["exo1"]["matched"]
    assert third.summary["cameras"]["exo1"]["match_reason"] == "new anchor"
    for i in (1, 2):
        assert iou(labels == i, truth == i) > 0.8  # where the box is now
        assert iou(labels == i, exo[0][1] == i) < 0.5  # not where it was matched
    assert third.summary["objects"]["2"]["exo1"]["confidence"] == 0.9
    fourth = run_set(proc, 4, ego, exo[3][0])  # tracked on from there
    assert iou(fourth.outputs["exo1"].labels == 1, exo[3][1] == 1) > 0.8
    assert not fourth.summary["cameras"]["exo1"]["matched"] and matcher.calls == 1
    proc.close()


def test_in_the_worker_the_same_match_holds_the_set_and_lands_on_the_matched_frame():
    """Without ``background`` (``corr bag process``, and the node by default) the set waits."""
    ego, ego_truth, exo, truths = moving_scene(1)
    matcher = Scripted(lambda rgb: truths[rgb.tobytes()])
    proc, _ = processor(matcher, background=False)
    proc.anchors.put("ego", 1, ego_truth)
    first = run_set(proc, 1, ego, exo[0][0])
    assert first.summary["cameras"]["exo1"]["match_reason"] == "new anchor"
    assert iou(first.outputs["exo1"].labels == 1, exo[0][1] == 1) > 0.99
    assert proc.background is None


def test_new_anchor_masks_make_a_running_match_stale_and_a_slow_one_is_given_up():
    ego, ego_truth, exo, truths = moving_scene(6)
    matcher = Gated(lambda rgb: truths[rgb.tobytes()])
    proc, log = processor(matcher, max_match_frames=2)
    proc.anchors.put("ego", 1, ego_truth)
    run_set(proc, 1, ego, exo[0][0])
    assert matcher.started.wait(30)
    stale = proc.background.pending["exo1"]
    only_1 = np.where(ego_truth == 1, 1, 0).astype(ego_truth.dtype)
    proc.anchors.put("ego", 2, only_1)  # new masks on the anchor: object 1 only
    run_set(proc, 2, ego, exo[1][0])
    fresh = proc.background.pending["exo1"]
    assert fresh is not stale and fresh.anchor_labels.max() == 1
    run_set(proc, 3, ego, exo[2][0])  # its matched frame and one more: still waiting
    assert proc.background.busy("exo1")
    run_set(proc, 4, ego, exo[3][0])  # a third frame: given up
    assert not proc.background.busy("exo1")
    assert any("given up after 2 frames" in line for line in log.lines)
    matcher.go.set()
    stale.future.result(30)
    fresh.future.result(30)
    out = run_set(proc, 5, ego, exo[4][0])  # matched again (the old answers are not used)
    assert proc.background.busy("exo1") and "exo1" not in out.outputs
    proc.background.pending["exo1"].future.result(30)
    out = run_set(proc, 6, ego, exo[5][0])
    assert set(np.unique(out.outputs["exo1"].labels)) == {0, 1}  # the new anchor's one object
    assert iou(out.outputs["exo1"].labels == 1, exo[5][1] == 1) > 0.8
    proc.close()


def test_a_failing_background_match_is_counted_and_the_camera_goes_on():
    ego, ego_truth, exo, truths = moving_scene(3)

    class Broken(Gated):
        def match(self, *args, **kwargs):
            raise RuntimeError("proposals exploded")

    proc, log = processor(Broken(lambda rgb: truths[rgb.tobytes()]))
    proc.anchors.put("ego", 1, ego_truth)
    run_set(proc, 1, ego, exo[0][0])
    proc.background.pending["exo1"].future.exception(30)
    out = run_set(proc, 2, ego, exo[1][0])
    assert "ego" in out.outputs and "exo1" not in out.outputs
    assert proc.drops.counts()[("exo1", "cross-view error")] == 1
    assert any("proposals exploded" in line for line in log.lines)
    proc.close()


def test_carry_forward_tracks_masks_through_the_frames_it_is_given():
    frames = [boxes([(16, 8 + 8 * k)], seed=3) for k in range(4)]
    model = Colour()
    import torch

    feats = [(model(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0], img.shape[:2])
             for img, _ in frames]
    cfg = PropagationConfig(topk=5, context=2, radius=4.0)
    out = carry_forward(cfg, "cpu", feats, frames[0][1])
    assert iou(out == 1, frames[-1][1] == 1) > 0.8
    np.testing.assert_array_equal(carry_forward(cfg, "cpu", feats[:1], frames[0][1]), frames[0][1])
