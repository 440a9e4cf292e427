"""The hand-off from message callbacks to one worker thread: approximate sync, then depth 1.

:class:`NewestSetWorker` wraps :class:`corr_core.sync.ApproximateSynchronizer` (the one sync
implementation, shared with the bag reader). Producers (for example ROS subscription callbacks)
call :meth:`NewestSetWorker.add`; each completed set replaces whatever set the worker has not
started yet (drop-oldest, depth 1), so the worker always processes the newest set and latency
never grows with load. Replaced sets are counted in :attr:`WorkerStats.sets_dropped`.

No ROS here: the live node (:mod:`corr_ros.nodes.corr_node`) feeds it from its callbacks, and the
tests drive it directly (test/test_sync.py).

Example::

    worker = NewestSetWorker(["ego", "exo1"], slop_s=0.05, queue_size=5, handler=process)
    worker.start()
    worker.add("ego", stamp_ns, frame)   # from any thread
    worker.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from corr_core.sync import ApproximateSynchronizer, SyncedSet

__all__ = ["LatestSlot", "NewestSetWorker", "WorkerStats"]

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox: :meth:`put` overwrites, :meth:`take` blocks until an item or close."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._closed = False

    def put(self, item: T) -> bool:
        """Stores ``item``; returns True if it replaced an item nobody had taken."""
        with self._cond:
            replaced = self._full
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Removes and returns the item; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout=timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wakes every waiting :meth:`take` (they return None from then on)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def full(self) -> bool:
        """Whether an item is waiting."""
        with self._cond:
            return self._full


@dataclass
class WorkerStats:
    """Counters of a :class:`NewestSetWorker` (read them through :meth:`NewestSetWorker.stats`).

    Every completed set is eventually processed or dropped:
    ``sets_completed == sets_processed + sets_dropped + (1 while a set waits or runs)``.

    Attributes:
        sets_completed: sets the synchronizer produced.
        sets_processed: sets the handler finished (with or without an error).
        sets_dropped: sets replaced by a newer one before the worker took them (or left waiting
            when the worker stopped).
        handler_errors: handler calls that raised.
        messages_dropped: per stream, messages the synchronizer discarded (no partner within the
            slop, queue overflow, or a stamp older than the stream's previous one).
    """

    sets_completed: int = 0
    sets_processed: int = 0
    sets_dropped: int = 0
    handler_errors: int = 0
    messages_dropped: dict[Hashable, int] | None = None


class NewestSetWorker(Generic[T]):
    """Approximate time sync of N streams feeding the newest complete set to one worker thread.

    Args:
        keys: stream names (camera names).
        slop_s: the largest stamp difference within a set, in seconds.
        queue_size: pending messages kept per stream.
        handler: called in the worker thread with each :class:`SyncedSet` it takes.
        on_error: called in the worker thread with any exception the handler raised (the worker
            keeps running). Default: ignore.
        name: the worker thread's name.

    Raises:
        ConfigError: for no keys, duplicate keys, negative slop or a queue size below 1.
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        slop_s: float,
        queue_size: int,
        handler: Callable[[SyncedSet[T]], None],
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "corr_sync_worker",
    ) -> None:
        self._sync: ApproximateSynchronizer[T] = ApproximateSynchronizer(
            list(keys), int(round(slop_s * 1e9)), int(queue_size)
        )
        self._lock = threading.Lock()
        self._slot: LatestSlot[tuple[float, SyncedSet[T]]] = LatestSlot()
        self._handler = handler
        self._on_error = on_error or (lambda exc: None)
        self._stats = WorkerStats()
        self._name = name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_latency_s: float | None = None

    @property
    def keys(self) -> list[Hashable]:
        """The stream names."""
        return list(self._sync.keys)

    def set_slop(self, slop_s: float) -> None:
        """Changes the slop (seconds) for sets formed from now on."""
        with self._lock:
            self._sync.slop_ns = int(round(slop_s * 1e9))

    def add(self, key: Hashable, stamp_ns: int, item: T) -> int:
        """Adds one message; returns how many sets it completed (the newest goes to the worker).

        Raises:
            KeyError: for an unknown stream.
        """
        with self._lock:
            sets = self._sync.add(key, stamp_ns, item)
            if not sets:
                return 0
            self._stats.sets_completed += len(sets)
            self._stats.sets_dropped += len(sets) - 1
            if self._slot.put((time.monotonic(), sets[-1])):
                self._stats.sets_dropped += 1
            return len(sets)

    def start(self) -> None:
        """Starts the worker thread (no-op when running). A set left waiting by :meth:`stop` is
        dropped (and counted): the worker starts with the next set."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        with self._lock:
            if self._slot.full:
                self._stats.sets_dropped += 1
            self._slot = LatestSlot()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stops the worker after its current set; returns False if it did not end in ``timeout``."""
        self._stop.set()
        self._slot.close()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        alive = self._thread.is_alive()
        if not alive:
            self._thread = None
        return not alive

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> WorkerStats:
        """A snapshot of the counters."""
        with self._lock:
            s = self._stats
            return WorkerStats(
                s.sets_completed,
                s.sets_processed,
                s.sets_dropped,
                s.handler_errors,
                dict(self._sync.dropped),
            )

    def _run(self) -> None:
        slot = self._slot
        while not self._stop.is_set():
            got = slot.take(timeout=0.5)
            if got is None:
                continue
            completed_at, synced = got
            try:
                self._handler(synced)
            except Exception as exc:  # the worker must survive any bad set
                with self._lock:
                    self._stats.handler_errors += 1
                self._on_error(exc)
            self.last_latency_s = time.monotonic() - completed_at
            with self._lock:
                self._stats.sets_processed += 1
