"""The approximate synchroniser, the mask anchors and the depth-1 worker hand-off, without ROS.

Every wait below is on an event or a condition with a timeout (no sleeps).
"""

from __future__ import annotations

import threading

import pytest

from corr_core.errors import ConfigError
from corr_core.handoff import LatestSlot, NewestSetWorker
from corr_core.sync import ApproximateSynchronizer, MaskAnchors

MS = 1_000_000
WAIT_S = 10.0


# ------------------------------------------------------------------ synchroniser


def test_sets_match_each_streams_closest_stamp_within_the_slop():
    sync = ApproximateSynchronizer(["a", "b", "c"], slop_ns=10 * MS, queue_size=5)
    assert sync.add("a", 100 * MS, "a0") == []
    assert sync.add("b", 104 * MS, "b0") == []
    assert sync.add("c", 97 * MS, "c0") == []  # unequal stamps: c's next frame might pair better
    sets = sync.add("c", 130 * MS, "c1")  # it does not
    assert len(sets) == 1
    (s,) = sets
    assert s.items == {"a": "a0", "b": "b0", "c": "c0"}
    assert s.stamps_ns == {"a": 100 * MS, "b": 104 * MS, "c": 97 * MS}
    assert s.stamp_ns == 104 * MS and s.spread_ns == 7 * MS
    assert sync.pending() == {"a": 0, "b": 0, "c": 1}
    assert sync.dropped == {"a": 0, "b": 0, "c": 0}


def test_a_message_without_partner_within_the_slop_is_dropped_and_counted():
    sync = ApproximateSynchronizer(["a", "b"], slop_ns=10 * MS, queue_size=5)
    sync.add("a", 100 * MS, "a-lonely")  # b skips this frame
    sync.add("a", 200 * MS, "a1")
    assert sync.add("b", 203 * MS, "b1") == []  # a's next frame might be closer to b1
    assert [s.items for s in sync.flush()] == [{"a": "a1", "b": "b1"}]  # end of the recording
    assert sync.dropped == {"a": 1, "b": 0}


def test_a_set_takes_the_candidates_closest_to_its_oldest_stamp_and_keeps_newer_ones():
    sync = ApproximateSynchronizer(["a", "b"], slop_ns=30 * MS, queue_size=5)
    sync.add("b", 104 * MS, "b-close")
    sync.add("b", 125 * MS, "b-later")  # also within the slop of a0, but farther
    assert sync.add("a", 100 * MS, "a0") == []  # waits for a's next frame
    (s,) = sync.add("a", 126 * MS, "a1")  # farther from b-close than a0: a0's set stands
    assert s.items == {"a": "a0", "b": "b-close"}
    assert sync.pending() == {"a": 1, "b": 1}  # b-later and a1: b's next frame decides
    (s,) = sync.flush()
    assert s.items == {"a": "a1", "b": "b-later"}
    assert sync.dropped == {"a": 0, "b": 0}


def test_one_lost_message_does_not_shift_every_later_pair():
    """30 Hz, slop 50 ms, equal stamps per frame, one b message lost: the pairs go back to equal
    stamps at once (before: every later a was paired with the b of the next frame)."""
    sync = ApproximateSynchronizer(["a", "b"], slop_ns=50 * MS, queue_size=5)
    period = 33 * MS
    sets = []
    for k in range(10):
        for key in ("b", "a"):  # b first: a lost b leaves a's frame as the oldest head
            if key == "b" and k == 3:
                continue
            sets += sync.add(key, k * period, f"{key}{k}")
    pairs = [(s.items["a"], s.items["b"]) for s in sets]
    assert all(a[1:] == b[1:] for a, b in pairs), pairs
    assert len(pairs) == 9 and sync.dropped == {"a": 1, "b": 0}


def test_unequal_stamps_pair_with_the_closest_frame_when_a_message_is_lost():
    """Free-running cameras 4 ms apart: a lost frame costs one set, the others keep their partners."""
    sync = ApproximateSynchronizer(["a", "b"], slop_ns=50 * MS, queue_size=5)
    sets = []
    for k in range(8):
        if k != 2:
            sets += sync.add("a", k * 33 * MS, f"a{k}")
        sets += sync.add("b", k * 33 * MS + 4 * MS, f"b{k}")
    sets += sync.flush()
    assert [(s.items["a"], s.items["b"]) for s in sets] == [(f"a{k}", f"b{k}") for k in range(8) if k != 2]
    assert sync.dropped == {"a": 0, "b": 1}


def test_queues_are_bounded_and_overflow_is_counted():
    sync = ApproximateSynchronizer(["a", "b"], slop_ns=MS, queue_size=3)
    for k in range(10):  # b never sends: a's queue keeps only the newest three
        assert sync.add("a", k * 100 * MS, f"a{k}") == []
    assert sync.pending() == {"a": 3, "b": 0}
    assert sync.dropped == {"a": 7, "b": 0}
    (s,) = sync.add("b", 900 * MS, "b9")
    assert s.items == {"a": "a9", "b": "b9"}
    assert sync.dropped["a"] == 9  # a7 and a8 go with the match: they are older than a9


def test_out_of_order_stamps_are_dropped_and_counted():
    sync = ApproximateSynchronizer(["a"], slop_ns=0, queue_size=2)
    assert len(sync.add("a", 200, "x")) == 1
    assert sync.add("a", 100, "older") == []
    assert sync.dropped == {"a": 1}
    assert len(sync.add("a", 200, "same stamp is fine")) == 1


@pytest.mark.parametrize(
    ("keys", "slop", "queue", "match"),
    [([], 0, 1, "at least one"), (["a", "a"], 0, 1, "duplicate"), (["a"], -1, 1, "slop"), (["a"], 0, 0, "queue")],
)
def test_bad_synchroniser_settings_are_config_errors(keys, slop, queue, match):
    with pytest.raises(ConfigError, match=match):
        ApproximateSynchronizer(keys, slop, queue)


def test_unknown_stream_is_a_key_error():
    with pytest.raises(KeyError, match="unknown stream"):
        ApproximateSynchronizer(["a"], 0).add("b", 0, None)


# ------------------------------------------------------------------ mask anchors


def test_mask_anchors_wait_for_their_frame():
    anchors = MaskAnchors(slop_s=0.01)
    anchors.put("cam", 2_000_000_000, "mask@2s")
    assert anchors.take("cam", 1_000_000_000) is None  # an older frame does not take it
    assert anchors.take("cam", 1_995_000_000) == "mask@2s"  # within the slop
    assert anchors.take("cam", 3_000_000_000) is None  # used once
    anchors.put("cam", 0, "next")
    assert anchors.take("other", 5) is None
    assert anchors.take("cam", 5) == "next"


def test_mask_anchors_restore_never_overwrites_a_newer_mask():
    anchors = MaskAnchors()
    anchors.put("cam", 10, "old")
    assert anchors.peek("cam") == "old" and anchors.has("cam")
    taken = anchors.take("cam", 10)
    assert anchors.restore("cam", 10, taken) and anchors.take("cam", 11) == "old"
    anchors.put("cam", 10, "old")
    taken = anchors.take("cam", 10)
    assert not anchors.put("cam", 20, "newer")
    assert not anchors.restore("cam", 10, taken)
    assert anchors.take("cam", 25) == "newer"
    anchors.put("cam", 0, "x")
    anchors.clear()
    assert not anchors.has("cam") and anchors.peek("cam") is None


# ------------------------------------------------------------------ hand-off


class GatedHandler:
    """A handler that blocks in every call until :meth:`release`; records the stamps it got."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: list[int] = []
        self.busy_with: int | None = None
        self._releases = 0

    def __call__(self, synced) -> None:
        with self.cond:
            self.busy_with = synced.stamp_ns
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self._releases > 0, timeout=WAIT_S)
            self._releases -= 1
            self.seen.append(synced.stamp_ns)
            self.busy_with = None
            self.cond.notify_all()

    def wait_busy(self, stamp: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.busy_with == stamp, timeout=WAIT_S), (self.busy_with, stamp)

    def release(self) -> None:
        with self.cond:
            self._releases += 1
            self.cond.notify_all()

    def wait_seen(self, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.seen) >= count, timeout=WAIT_S), self.seen


def _add_set(worker: NewestSetWorker, keys, stamp: int) -> None:
    for key in keys:
        worker.add(key, stamp, f"{key}@{stamp}")


def test_worker_gets_only_the_newest_set_and_counts_the_rest():
    handler = GatedHandler()
    worker = NewestSetWorker(["a", "b"], slop_s=0.01, queue_size=5, handler=handler)
    worker.start()
    try:
        worker.add("a", 1_000, "a1")
        assert worker.add("b", 1_000, "b1") == 1
        handler.wait_busy(1_000)  # the worker is busy with set 1
        for k in range(2, 6):  # four more sets while it is busy: only the newest survives
            _add_set(worker, "ab", k * 1_000_000_000)
        handler.release()
        handler.wait_busy(5_000_000_000)
        handler.release()
        handler.wait_seen(2)
        assert handler.seen == [1_000, 5_000_000_000]
        stats = worker.stats()
        assert (stats.sets_completed, stats.sets_dropped) == (5, 3)
    finally:
        handler.release()
        assert worker.stop()
    assert worker.stats().sets_processed == 2


@pytest.mark.parametrize("load", [1, 10, 200])
def test_latency_does_not_grow_with_load(load):
    """However many sets arrive while the worker is busy, the next one it runs is the newest:
    the backlog it works through is at most one set, so its lag stays one set."""
    handler = GatedHandler()
    keys = ["a", "b", "c"]
    worker = NewestSetWorker(keys, slop_s=0.001, queue_size=5, handler=handler)
    worker.start()
    try:
        stamp = 1
        _add_set(worker, keys, stamp)
        for _round in range(3):
            handler.wait_busy(stamp)
            for _ in range(load):  # a burst while the worker is busy
                stamp += 1_000_000_000
                _add_set(worker, keys, stamp)
            handler.release()
            handler.wait_busy(stamp)  # the newest set of the burst, nothing older
            assert handler.seen[-1] != stamp
        handler.release()
        handler.wait_seen(4)
        stats = worker.stats()
        assert stats.sets_completed == 1 + 3 * load
        assert stats.sets_processed == 4
        assert stats.sets_dropped == 3 * (load - 1)
        assert stats.messages_dropped == {k: 0 for k in keys}
    finally:
        handler.release()
        assert worker.stop()


def test_worker_survives_handler_errors():
    errors: list[BaseException] = []
    cond = threading.Condition()

    def on_error(exc):
        with cond:
            errors.append(exc)
            cond.notify_all()

    def handler(synced):
        raise RuntimeError(f"bad set {synced.stamp_ns}")

    worker = NewestSetWorker(["a"], 0.0, 2, handler, on_error=on_error)
    worker.start()
    try:
        worker.add("a", 1, "x")
        with cond:
            assert cond.wait_for(lambda: len(errors) == 1, timeout=WAIT_S)
        worker.add("a", 2, "y")
        with cond:
            assert cond.wait_for(lambda: len(errors) == 2, timeout=WAIT_S)
        assert worker.running
        assert worker.stats().handler_errors == 2
        assert "bad set 2" in str(errors[-1])
    finally:
        worker.stop()


def test_stop_then_start_resumes_with_new_sets_only():
    handler = GatedHandler()
    worker = NewestSetWorker(["a"], slop_s=0.0, queue_size=2, handler=handler)
    assert worker.stop() and not worker.running  # stopping a worker never started is fine
    worker.start()
    worker.start()  # no second thread
    worker.add("a", 1, "x")
    handler.wait_busy(1)
    handler.release()
    handler.wait_seen(1)
    assert worker.stop() and not worker.running
    worker.add("a", 2, "while stopped")  # waits in the slot; nobody takes it
    assert worker.stats().sets_processed == 1
    worker.start()
    try:
        worker.add("a", 3, "after restart")
        handler.wait_busy(3)
        handler.release()
        handler.wait_seen(2)
        assert handler.seen == [1, 3]
        stats = worker.stats()
        assert (stats.sets_completed, stats.sets_processed, stats.sets_dropped) == (3, 2, 1)
    finally:
        handler.release()
        assert worker.stop()


def test_slop_changes_apply_to_new_sets():
    got: list = []
    done = threading.Condition()

    def handler(synced):
        with done:
            got.append(synced.items)
            done.notify_all()

    worker = NewestSetWorker(["a", "b"], slop_s=0.001, queue_size=5, handler=handler)
    worker.start()
    try:
        worker.add("a", 100 * MS, "a0")
        assert worker.add("b", 105 * MS, "b0") == 0  # 5 ms apart: more than the slop
        worker.set_slop(0.01)
        worker.add("a", 200 * MS, "a1")
        worker.add("b", 205 * MS, "b1")
        assert worker.add("a", 300 * MS, "a2") == 1  # a's next frame confirms the (a1, b1) set
        with done:
            assert done.wait_for(lambda: got, timeout=WAIT_S)
        assert got == [{"a": "a1", "b": "b1"}]
        assert worker.stats().messages_dropped == {"a": 1, "b": 1}  # a0, then b0 (no partner)
    finally:
        worker.stop()


def test_latest_slot_overwrites_and_close_wakes_takers():
    slot: LatestSlot[str] = LatestSlot()
    assert not slot.put("a") and slot.put("b") and slot.full
    assert slot.take(timeout=0) == "b" and not slot.full
    assert slot.take(timeout=0) is None
    taken: list = []
    started = threading.Event()

    def taker():
        started.set()
        taken.append(slot.take())

    thread = threading.Thread(target=taker)
    thread.start()
    assert started.wait(WAIT_S)
    slot.close()
    thread.join(WAIT_S)
    assert not thread.is_alive() and taken == [None]
