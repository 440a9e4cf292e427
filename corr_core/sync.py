"""Approximate time synchronisation of N timestamped streams.

One implementation serves the rosbag2 reader (:mod:`corr_core.data.bag`) and the live ROS node
(through :class:`corr_core.handoff.NewestSetWorker`). It follows the idea of ROS
``message_filters.ApproximateTimeSynchronizer`` with a slop: a set is emitted when every stream has
a message whose stamp lies within ``slop_ns`` of the set's newest stamp. Each stream keeps a bounded
queue, so memory never grows with load.

A set whose stamps are not all equal is emitted only once the stream of its oldest message has
shown its next message (or a queue is full, or :meth:`ApproximateSynchronizer.flush`): if that next
message is closer to the others, the oldest one is dropped instead. Without this wait, one lost
message at a frame rate faster than the slop pairs every later frame with its neighbour's
successor for good (each camera's labels then carry a different stamp). Sets of equal stamps
(hardware-triggered cameras, simulation) go out at once.

:class:`MaskAnchors` matches masks (given on their own, e.g. on ``<camera>/masks_in``) to the
frame they belong to by stamp, with the same slop; :class:`NearestStamp` keeps what rides beside a
set (an anchor camera's depth images) for lookup by the set's stamp.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from corr_core.errors import ConfigError

T = TypeVar("T")


@dataclass
class SyncedSet(Generic[T]):
    """One message per stream whose stamps lie within the slop of each other.

    Attributes:
        stamp_ns: the newest stamp in the set (ns); the set's reference time.
        items: stream key -> item.
        stamps_ns: stream key -> that item's own stamp (ns).
    """

    stamp_ns: int
    items: dict[Hashable, T]
    stamps_ns: dict[Hashable, int] = field(default_factory=dict)

    @property
    def spread_ns(self) -> int:
        """Largest minus smallest stamp in the set."""
        return max(self.stamps_ns.values()) - min(self.stamps_ns.values())


class ApproximateSynchronizer(Generic[T]):
    """Groups items from several streams into sets with stamps within ``slop_ns``.

    Items must arrive in non-decreasing stamp order per stream (as camera drivers and bags give
    them); an item older than the last one on its stream is dropped and counted.

    Args:
        keys: the stream names (for example camera names). At least one.
        slop_ns: the largest allowed difference between stamps in one set, in nanoseconds.
        queue_size: how many pending items each stream keeps; the oldest is dropped beyond it.
    """

    def __init__(self, keys: Sequence[Hashable], slop_ns: int, queue_size: int = 10) -> None:
        if not keys:
            raise ConfigError("ApproximateSynchronizer needs at least one stream key")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"duplicate stream keys: {list(keys)}")
        if slop_ns < 0:
            raise ConfigError(f"slop must be >= 0 ns, got {slop_ns}")
        if queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {queue_size}")
        self.keys = list(keys)
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self._queues: dict[Hashable, deque[tuple[int, Any]]] = {k: deque() for k in self.keys}
        self._last_stamp: dict[Hashable, int] = {}
        self.dropped: dict[Hashable, int] = {k: 0 for k in self.keys}

    def add(self, key: Hashable, stamp_ns: int, item: T) -> list[SyncedSet[T]]:
        """Adds one item and returns the sets it completes (oldest first; usually 0 or 1).

        Raises:
            KeyError: if ``key`` is not one of the streams.
        """
        if key not in self._queues:
            raise KeyError(f"unknown stream {key!r}; expected one of {self.keys}")
        stamp_ns = int(stamp_ns)
        if stamp_ns < self._last_stamp.get(key, -(2**63)):
            self.dropped[key] += 1
            return []
        self._last_stamp[key] = stamp_ns
        q = self._queues[key]
        q.append((stamp_ns, item))
        if len(q) > self.queue_size:
            q.popleft()
            self.dropped[key] += 1
        return self._emit()

    def flush(self) -> list[SyncedSet[T]]:
        """The sets still waiting for a stream's next message (end of a recording)."""
        return self._emit(final=True)

    def _pivot_gives_way(self, pivot: Hashable, oldest: int, stamps: dict[Hashable, int], final: bool) -> bool | None:
        """For a set of unequal stamps: True when the pivot stream's next message pairs better (drop
        the pivot), False when the set stands, None when that next message has yet to arrive."""
        q = self._queues[pivot]
        if len(q) < 2:
            full = any(len(x) >= self.queue_size for x in self._queues.values())
            return False if final or full else None
        nxt = q[1][0]
        return any(abs(s - nxt) < abs(s - oldest) for k, s in stamps.items() if k != pivot)

    def _emit(self, final: bool = False) -> list[SyncedSet[T]]:
        out: list[SyncedSet[T]] = []
        while all(self._queues[k] for k in self.keys):
            heads = {k: self._queues[k][0][0] for k in self.keys}
            oldest_key = min(heads, key=heads.get)
            oldest = heads[oldest_key]
            # For every stream pick the candidate closest to the oldest head, within the slop.
            chosen: dict[Hashable, int] = {}
            for k in self.keys:
                best = None
                for i, (s, _) in enumerate(self._queues[k]):
                    if s - oldest > self.slop_ns:
                        break
                    if best is None or abs(s - oldest) < abs(self._queues[k][best][0] - oldest):
                        best = i
                if best is None:
                    break
                chosen[k] = best
            if len(chosen) == len(self.keys):
                stamps = {k: self._queues[k][i][0] for k, i in chosen.items()}
                if max(stamps.values()) - min(stamps.values()) <= self.slop_ns:
                    if max(stamps.values()) != min(stamps.values()):
                        gives_way = self._pivot_gives_way(oldest_key, oldest, stamps, final)
                        if gives_way is None:
                            break
                        if gives_way:
                            self._queues[oldest_key].popleft()
                            self.dropped[oldest_key] += 1
                            continue
                    items = {k: self._queues[k][i][1] for k, i in chosen.items()}
                    for k, i in chosen.items():
                        for _ in range(i + 1):  # drop the chosen item and everything older
                            self._queues[k].popleft()
                        self.dropped[k] += i
                    out.append(SyncedSet(max(stamps.values()), items, stamps))
                    continue
            # The oldest head cannot be matched by anything that can still arrive: drop it.
            self._queues[oldest_key].popleft()
            self.dropped[oldest_key] += 1
        return out

    def pending(self) -> dict[Hashable, int]:
        """Number of queued items per stream."""
        return {k: len(q) for k, q in self._queues.items()}


@dataclass
class _Anchor:
    stamp_ns: int
    labels: Any


class MaskAnchors:
    """Masks waiting for the frame they belong to, one per stream (a newer mask replaces an older).

    A mask anchors the first processed frame of its stream whose stamp is not older than the
    mask's (minus the slop): the frame with the closest stamp, or the next frame when that one was
    dropped. Thread-safe: masks are put by one thread and taken by another.

    Args:
        slop_s: a frame up to this much older than the mask still takes it, in seconds.
    """

    def __init__(self, slop_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Anchor] = {}
        self.slop_ns = int(round(slop_s * 1e9))

    def put(self, key: Hashable, stamp_ns: int, labels: Any) -> bool:
        """Stores a mask for stream ``key``; returns True if it replaced one never used.

        Args:
            key: stream (camera) name.
            stamp_ns: the mask's stamp; ``<= 0`` means "the next frame".
            labels: the mask, typically an ``(H, W)`` integer label map.
        """
        with self._lock:
            replaced = key in self._pending
            self._pending[key] = _Anchor(int(stamp_ns), labels)
            return replaced

    def take(self, key: Hashable, frame_stamp_ns: int) -> Any | None:
        """The pending mask of stream ``key`` if the frame is not older than it (minus the slop).

        The mask is removed once returned; frames older than the mask leave it pending.
        """
        with self._lock:
            anchor = self._pending.get(key)
            if anchor is None or frame_stamp_ns < anchor.stamp_ns - self.slop_ns:
                return None
            del self._pending[key]
            return anchor.labels

    def restore(self, key: Hashable, stamp_ns: int, labels: Any) -> bool:
        """Puts back a mask that :meth:`take` returned but that could not be used yet; a mask
        stored since wins (returns False then)."""
        with self._lock:
            if key in self._pending:
                return False
            self._pending[key] = _Anchor(int(stamp_ns), labels)
            return True

    def peek(self, key: Hashable) -> Any | None:
        """The pending mask of stream ``key`` (left pending), or None."""
        with self._lock:
            anchor = self._pending.get(key)
            return None if anchor is None else anchor.labels

    def has(self, key: Hashable) -> bool:
        """Whether stream ``key`` has a mask waiting."""
        with self._lock:
            return key in self._pending

    def clear(self) -> None:
        """Forgets every pending mask."""
        with self._lock:
            self._pending.clear()


class NearestStamp(Generic[T]):
    """The last ``size`` items of one stream, looked up by the stamp closest to a given one.

    For data that rides beside a synchronised set rather than in it (the anchor camera's depth
    image, registered to its colour image and stamped like it): a lookup takes the item nearest
    in time, within the slop, or nothing. Thread-safe: items are put by one thread and looked up
    by another.

    Args:
        size: items kept (the oldest goes first).
    """

    def __init__(self, size: int = 8) -> None:
        if size < 1:
            raise ConfigError(f"NearestStamp: size must be >= 1, got {size}")
        self._lock = threading.Lock()
        self._items: deque[tuple[int, T]] = deque(maxlen=int(size))

    def put(self, stamp_ns: int, item: T) -> None:
        """Stores ``item`` taken at ``stamp_ns``."""
        with self._lock:
            self._items.append((int(stamp_ns), item))

    def nearest(self, stamp_ns: int, slop_ns: int) -> T | None:
        """The item whose stamp is closest to ``stamp_ns`` if within ``slop_ns`` of it, else None."""
        with self._lock:
            items = list(self._items)
        if not items:
            return None
        gap, item = min(((abs(s - int(stamp_ns)), it) for s, it in items), key=lambda x: x[0])
        return item if gap <= slop_ns else None

    def clear(self) -> None:
        """Forgets every item."""
        with self._lock:
            self._items.clear()
