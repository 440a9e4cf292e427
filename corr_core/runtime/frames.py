"""Which decoded frame of a camera may reach its tracker: a bad frame never fixes the stream's size.

Used by ``corr_node`` (:mod:`corr_ros.tracking.pipeline`) and by ``corr bag process``; moved here from
``corr_ros.tracking.frames``, which re-exports it.

A camera's size is fixed only by the frame its tracker is anchored at (a frame with a mask), never
by the first frame received. :class:`SizeGate` (one per camera, thread-safe: the subscription
callbacks check frames, the worker reports anchoring) decides for every decoded frame:

* an empty frame (0 pixels) is dropped;
* before anchoring, a frame whose size differs from the mask waiting for the camera is dropped
  (the mask is kept for a frame of its size); otherwise it goes on (without a mask it is then
  dropped as "no initial mask yet");
* once anchored, a frame of the anchored size goes on; a frame of another size goes on only when
  the mask waiting for the camera has that size (the tracker restarts from it); otherwise it is
  dropped as a size mismatch, until ``change_after`` frames in a row have the same new size: then
  the size has really changed, the gate starts a new *epoch* (the worker resets the camera's
  tracker when it sees a frame of a newer epoch) and waits for a mask of the new size.

A mask (:meth:`SizeGate.check_mask`) is taken when the camera is not anchored, or when it has the
anchored size or the size of the camera's latest frame (frames of a new size have started); any
other size cannot be meant for this camera and is refused at once.

No ROS here (the node feeds it sizes), so it is tested directly (test/test_ros_frames.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["SizeGate", "Verdict", "format_size"]

Size = tuple[int, int]


def format_size(size: Size | None) -> str:
    """``(H, W)`` as ``"WxH"`` (the way cameras are described); ``"none"`` for None."""
    return "none" if size is None else f"{size[1]}x{size[0]}"


@dataclass(frozen=True)
class Verdict:
    """What to do with one frame.

    Attributes:
        accept: whether the frame goes on to the synchroniser and the tracker.
        epoch: the camera's stream epoch the frame belongs to (accepted frames).
        reason: why it was dropped (a diagnostics key), "" when accepted.
        detail: a sentence for the log.
        changed_from: set on the frame that confirmed a size change: the previous size.
    """

    accept: bool
    epoch: int = 0
    reason: str = ""
    detail: str = ""
    changed_from: Size | None = None


class SizeGate:
    """Frame-size decisions of one camera (see the module docstring).

    Args:
        change_after: frames in a row of one new size (with no mask for it) that make a size change.
    """

    def __init__(self, change_after: int = 3) -> None:
        self._lock = threading.Lock()
        self.change_after = int(change_after)
        self._size: Size | None = None
        self._epoch = 0
        self._candidate: Size | None = None
        self._count = 0
        self._latest: Size | None = None
        self.size_changes = 0

    @property
    def size(self) -> Size | None:
        """``(H, W)`` the camera's tracker is anchored at in the current epoch (None: not anchored)."""
        with self._lock:
            return self._size

    @property
    def epoch(self) -> int:
        """Increases at every confirmed size change."""
        with self._lock:
            return self._epoch

    def check(self, size: Size, mask_size: Size | None = None) -> Verdict:
        """Decides on a decoded frame of ``size`` (``(H, W)``), given the size of the mask waiting for
        this camera (None when none waits)."""
        size = (int(size[0]), int(size[1]))
        if size[0] <= 0 or size[1] <= 0:
            return Verdict(False, reason="empty image", detail=f"image {format_size(size)} has no pixels")
        with self._lock:
            self._latest = size
            expected = self._size
            if expected is None:
                if mask_size is not None and size != tuple(mask_size):
                    return Verdict(
                        False,
                        reason="size mismatch",
                        detail=f"image {format_size(size)} differs from the mask waiting for this camera "
                        f"({format_size(mask_size)}); the mask is kept for a frame of its size",
                    )
                return Verdict(True, self._epoch)
            if size == expected:
                self._candidate, self._count = None, 0
                return Verdict(True, self._epoch)
            if mask_size is not None and size == tuple(mask_size):
                return Verdict(True, self._epoch)  # the worker restarts the tracker from that mask
            if size != self._candidate:
                self._candidate, self._count = size, 0
            self._count += 1
            if self._count < self.change_after:
                return Verdict(
                    False,
                    reason="size mismatch",
                    detail=f"image {format_size(size)} differs from the camera's frames {format_size(expected)} "
                    f"({self._count} of {self.change_after} in a row before its tracker restarts at the new size)",
                )
            self._size, self._candidate, self._count = None, None, 0
            self._epoch += 1
            self.size_changes += 1
            return Verdict(True, self._epoch, changed_from=expected)

    def check_mask(self, size: Size) -> str | None:
        """Why a mask of ``size`` (``(H, W)``) cannot be meant for this camera, or None when it can."""
        size = (int(size[0]), int(size[1]))
        with self._lock:
            expected, latest = self._size, self._latest
        if expected is None or size in (expected, latest):
            return None
        other = f" and from its latest frame {format_size(latest)}" if latest not in (None, expected) else ""
        return (
            f"mask {format_size(size)} differs from the camera's frames {format_size(expected)}{other}; "
            "a mask for a new size is taken once frames of that size arrive"
        )

    def anchored(self, size: Size, epoch: int) -> None:
        """The worker anchored the camera's tracker at ``size`` on a frame of ``epoch`` (ignored when
        a size change started a newer epoch since)."""
        with self._lock:
            if epoch == self._epoch:
                self._size = (int(size[0]), int(size[1]))
                self._candidate, self._count = None, 0

    def reset(self) -> None:
        """Forgets the size (the camera's tracker was reset); starts a new epoch."""
        with self._lock:
            self._size, self._candidate, self._count = None, None, 0
            self._epoch += 1
