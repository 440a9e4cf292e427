"""Counting what a pipeline drops, and how long its sets take: :class:`DropCounter`, :class:`Timings`.

Bad input never stops ``corr_node`` (or ``corr bag process``): it is dropped, counted per camera and
reason by :class:`DropCounter` (with a throttled warning), and reported in diagnostics. No ROS here;
``corr_ros.tracking.diagnostics`` re-exports both and turns them into ``/diagnostics`` statuses.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["WARN_THROTTLE_S", "DropCounter", "Timings"]

WARN_THROTTLE_S = 5.0


class DropCounter:
    """Counts dropped messages per (camera, reason) and logs a throttled warning per pair.

    Args:
        logger: has ``warning(str)`` (an rclpy logger).
        throttle_s: least seconds between two warnings of one camera and reason.
    """

    def __init__(self, logger: Any, throttle_s: float = WARN_THROTTLE_S) -> None:
        self._logger = logger
        self._throttle_s = throttle_s
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._last_log: dict[tuple[str, str], float] = {}

    def drop(self, camera: str, reason: str, detail: str = "") -> None:
        """Counts one drop and warns (at most once per ``throttle_s`` per camera and reason)."""
        key = (camera, reason)
        now = time.monotonic()
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            count = self._counts[key]
            due = now - self._last_log.get(key, -1e18) >= self._throttle_s
            if due:
                self._last_log[key] = now
        if due:
            extra = f": {detail}" if detail else ""
            self._logger.warning(f"camera '{camera}': dropped input ({reason}){extra} [{count} so far]")

    def counts(self) -> dict[tuple[str, str], int]:
        """A snapshot ``{(camera, reason): count}``."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forgets every count."""
        with self._lock:
            self._counts.clear()
            self._last_log.clear()


class Timings:
    """Latency and processing time of the sets processed since the last diagnostics message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latency_s: list[float] = []
        self._processing_s: list[float] = []

    def add(self, latency_s: float, processing_s: float) -> None:
        """Records one set (called by the worker)."""
        with self._lock:
            self._latency_s.append(latency_s)
            self._processing_s.append(processing_s)

    def take(self) -> tuple[list[float], list[float]]:
        """``(latencies, processing times)`` in seconds since the last call; clears them."""
        with self._lock:
            out = (self._latency_s, self._processing_s)
            self._latency_s, self._processing_s = [], []
            return out
