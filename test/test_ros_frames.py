"""corr_node's frame-size rules and set processing, without ROS processes (a fake tracker).

The same rules are exercised over real topics in test_ros_node_inputs.py; here every branch is
driven directly and fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from corr_core.sync import MaskAnchors, SyncedSet
from corr_ros.tracking.frames import SizeGate, format_size

pytest.importorskip("diagnostic_msgs", reason="the ROS 2 message packages are not installed")

BIG, SMALL = (48, 64), (24, 32)


def test_an_empty_frame_is_dropped_and_fixes_nothing():
    gate = SizeGate()
    verdict = gate.check((0, 0))
    assert not verdict.accept and verdict.reason == "empty image"
    assert gate.size is None and gate.check(BIG).accept


def test_before_anchoring_frames_must_match_the_waiting_mask():
    gate = SizeGate()
    verdict = gate.check(SMALL, mask_size=BIG)
    assert not verdict.accept and verdict.reason == "size mismatch" and "mask is kept" in verdict.detail
    assert gate.check(BIG, mask_size=BIG).accept
    assert gate.check(SMALL).accept  # no mask, not anchored: it goes on (and waits for a mask there)
    assert gate.size is None


def test_an_odd_frame_is_dropped_and_a_lasting_change_starts_a_new_epoch():
    gate = SizeGate(change_after=3)
    gate.anchored(BIG, gate.epoch)
    assert gate.size == BIG
    assert [gate.check(SMALL).accept for _ in range(2)] == [False, False]
    assert gate.check(BIG).accept  # back to normal: the count starts again
    assert [gate.check(SMALL).accept for _ in range(2)] == [False, False]
    verdict = gate.check(SMALL)
    assert verdict.accept and verdict.changed_from == BIG and verdict.epoch == 1
    assert gate.size is None and gate.size_changes == 1
    gate.anchored(BIG, 0)  # a report from before the change is ignored
    assert gate.size is None
    gate.anchored(SMALL, 1)
    assert gate.size == SMALL and gate.check(SMALL).accept


def test_a_mask_of_the_new_size_lets_its_frames_through():
    gate = SizeGate(change_after=3)
    gate.anchored(BIG, 0)
    assert gate.check_mask(SMALL) is not None  # no frame of that size yet: not for this camera
    assert not gate.check(SMALL).accept
    assert gate.check_mask(SMALL) is None  # frames of that size have started
    verdict = gate.check(SMALL, mask_size=SMALL)
    assert verdict.accept and verdict.changed_from is None and verdict.epoch == 0
    assert "differs from the camera's frames 64x48 and from its latest frame 32x24" in gate.check_mask((10, 10))
    assert format_size(None) == "none"


class FakeTracker:
    """Echoes masks; later frames get the last labels; records resets."""

    def __init__(self) -> None:
        self.labels = None
        self.image_size = None
        self.resets = 0
        self.changes = {}

    @property
    def anchored(self) -> bool:
        return self.labels is not None

    def reset(self) -> None:
        self.labels, self.image_size = None, None
        self.resets += 1

    def step(self, frame, masks=None):
        size = frame.shape[:2]
        if masks is not None:
            self.labels, self.image_size = masks, size
        elif self.image_size != size:
            raise ValueError("size changed: call reset()")
        return self.labels

    def update_config(self, **changes):
        self.changes.update(changes)

        class Cfg:
            def to_dict(self):
                return dict(changes)

        return Cfg()


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


@pytest.fixture
def processor():
    from corr_ros.tracking.diagnostics import DropCounter
    from corr_ros.tracking.processing import SetProcessor

    log = Log()
    gates = {"cam": SizeGate(change_after=2)}
    proc = SetProcessor({"cam": FakeTracker()}, MaskAnchors(), gates, DropCounter(log), log,
                        render_overlay=lambda rgb, labels, alpha: rgb)
    return proc


def _set(stamp: int, size=BIG, epoch: int = 0) -> SyncedSet:
    from corr_ros.tracking.processing import Frame

    class Header:
        frame_id = "cam_frame"

    frame = Frame(Header(), np.zeros((*size, 3), np.uint8), 0.0, epoch)
    return SyncedSet(stamp, {"cam": frame}, {"cam": stamp})


def test_processing_waits_for_a_mask_then_tracks(processor):
    out = processor.process(_set(1))
    assert out.summary["skipped"] == {"cam": "no initial mask yet"} and not out.outputs
    mask = np.zeros(BIG, np.uint16)
    mask[:4, :4] = 300
    processor.anchors.put("cam", 2, mask)
    out = processor.process(_set(2), overlay_for=lambda cam: True)
    assert out.outputs["cam"].labels is mask and out.outputs["cam"].overlay is not None
    assert out.summary["cameras"]["cam"]["objects"] == [{"id": 300, "area": 16}]
    assert out.summary["cameras"]["cam"]["reanchored"] is True
    assert processor.gates["cam"].size == BIG
    processor.update_config(topk=3)
    out = processor.process(_set(3))
    assert out.summary["cameras"]["cam"]["reanchored"] is False
    assert processor.trackers["cam"].changes == {"topk": 3}


def test_a_mask_of_another_size_is_discarded_while_frames_keep_their_size(processor):
    processor.anchors.put("cam", 0, np.ones(BIG, np.uint8))
    processor.process(_set(1))
    processor.anchors.put("cam", 0, np.ones((10, 10), np.uint8))
    out = processor.process(_set(2))
    assert "cam" in out.outputs
    assert processor.drops.counts() == {("cam", "mask size mismatch"): 1}


def test_a_frame_that_does_not_fit_the_waiting_mask_leaves_it_waiting(processor):
    processor.anchors.put("cam", 0, np.ones(BIG, np.uint8))
    out = processor.process(_set(1, SMALL))
    assert out.summary["skipped"] == {"cam": "size mismatch"}
    assert processor.anchors.has("cam")
    assert "cam" in processor.process(_set(2)).outputs


def test_a_new_epoch_resets_the_tracker_and_a_mask_of_the_new_size_anchors_it(processor):
    tracker = processor.trackers["cam"]
    processor.anchors.put("cam", 0, np.ones(BIG, np.uint8))
    processor.process(_set(1))
    out = processor.process(_set(2, SMALL, epoch=1))
    assert tracker.resets == 1 and out.summary["skipped"] == {"cam": "no initial mask yet"}
    processor.anchors.put("cam", 3, np.ones(SMALL, np.uint8))
    assert "cam" in processor.process(_set(3, SMALL, epoch=1)).outputs
    assert tracker.image_size == SMALL
    # a re-anchoring mask of yet another size resets the tracker first (no size error)
    processor.anchors.put("cam", 4, np.ones(BIG, np.uint8))
    out = processor.process(_set(4, BIG, epoch=1))
    assert "cam" in out.outputs and tracker.resets == 2
    assert "size changed from 32x24 to 64x48: re-anchored from a mask" in processor.notes["cam"]


def test_a_tracker_error_skips_only_that_frame(processor):
    processor.anchors.put("cam", 0, np.ones(BIG, np.uint8))
    processor.process(_set(1))
    processor.trackers["cam"].step = lambda frame, masks=None: (_ for _ in ()).throw(RuntimeError("boom"))
    out = processor.process(_set(2))
    assert out.summary["skipped"] == {"cam": "tracker error"}
    assert processor.drops.counts()[("cam", "tracker error")] == 1


def test_ids_in_log_lines_are_bounded():
    from corr_ros.tracking.processing import format_ids

    assert format_ids(np.array([[0, 3], [5, 3]])) == "[3, 5]"
    text = format_ids(np.arange(1001))
    assert text.startswith("[1, 2, 3") and text.endswith("and 984 more (1000 ids)") and len(text) < 120


def test_crossview_mode_gives_the_anchor_objects_to_the_other_camera_and_reports_visibility():
    from corr_core.crossview.base import MatchResult
    from corr_core.crossview.multicam import CrossViewLink
    from corr_ros.tracking.diagnostics import DropCounter
    from corr_ros.tracking.processing import Frame, SetProcessor

    class Matcher:
        """Finds object 5 shifted by 10 columns; object 9 is hidden from the target."""

        calls = 0

        def match(self, src_rgb, src_labels, tgt_rgb, geometry=None):
            Matcher.calls += 1
            out = np.zeros(tgt_rgb.shape[:2], np.uint16)
            out[:, 10:] = np.where(src_labels[:, :-10] == 5, 5, 0)
            return MatchResult(out, {5: True, 9: False}, {5: 0.8, 9: 0.2}, {5: out == 5, 9: np.zeros_like(out, bool)})

    class Header:
        frame_id = "f"

    log = Log()
    cams = ["ego", "exo1"]
    link = CrossViewLink(Matcher(), "ego", cams, retry_every=50)
    proc = SetProcessor({c: FakeTracker() for c in cams}, MaskAnchors(), {c: SizeGate(2) for c in cams},
                        DropCounter(log), log, link=link)

    def synced(stamp):
        frames = {c: Frame(Header(), np.zeros((*BIG, 3), np.uint8), 0.0) for c in cams}
        return SyncedSet(stamp, frames, {c: stamp for c in cams})

    mask = np.zeros(BIG, np.uint16)
    mask[2:6, 2:8], mask[8:12, 20:30] = 5, 9
    proc.anchors.put("ego", 1, mask)
    first = proc.process(synced(1))
    assert first.summary["cameras"]["exo1"]["matched"] and Matcher.calls == 1
    exo = first.outputs["exo1"].labels
    assert set(np.unique(exo)) == {0, 5} and np.array_equal(exo[:, 10:] == 5, mask[:, :-10] == 5)
    assert first.summary["objects"]["5"]["exo1"] == {"visible": True, "confidence": 0.8, "area": int((exo == 5).sum())}
    assert first.summary["objects"]["9"]["exo1"]["visible"] is False
    assert first.summary["objects"]["9"]["exo1"]["confidence"] == 0.2
    assert first.summary["objects"]["9"]["ego"] == {"visible": True, "confidence": 1.0, "area": 40}
    second = proc.process(synced(2))  # tracked; object 9 still missing but not retried yet
    assert not second.summary["cameras"]["exo1"]["matched"] and Matcher.calls == 1
