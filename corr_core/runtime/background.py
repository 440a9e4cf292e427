"""Cross-view matches off the worker thread, their masks carried to the frame they land on.

A cross-view match (graph proposals, the correspondence network) takes about half a second on a
CPU, several frames of a live camera. Run in ``corr_node``'s worker it holds up every camera for
that long. :class:`BackgroundMatches` runs it in a thread of its own instead: the worker keeps
tracking every camera, and it remembers the features of the matched camera's frames from the
matched one on. When the match is done, the next set of that camera takes it:
:func:`carry_forward` tracks the matched masks from the matched frame through the remembered
frames to the current one (a fresh tracker with the camera's settings, features computed
already), and the camera is anchored (or, for a retry, merged) there, as a match in the worker
would have been at the matched frame.

A match outlives what it was made for when the anchor camera gets new masks or the camera's stream
restarts (:meth:`BackgroundMatches.discard`); one that waited for more than ``max_frames`` frames
is given up and the camera is matched again. One match runs at a time (the matcher is not shared
between threads); a camera waits for its turn.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BackgroundMatches", "PendingMatch", "carry_forward"]


@dataclass
class PendingMatch:
    """One camera's match under way.

    Attributes:
        reason: why it was matched (``multicam.MATCH_REASONS``).
        future: resolves to what the submitted function returns.
        frames: ``(features, (H, W))`` of the camera's frames from the matched one on.
        anchor_labels: the anchor camera's labels the match was made from.
    """

    reason: str
    future: Future
    anchor_labels: np.ndarray
    frames: list[tuple[Any, tuple[int, int]]] = field(default_factory=list)


class BackgroundMatches:
    """Cross-view matches running in one background thread, one per camera at most.

    Args:
        max_frames: frames a match may take before it is given up (the features of that many
            frames are held for :func:`carry_forward`).
    """

    def __init__(self, max_frames: int = 30) -> None:
        self.max_frames = int(max_frames)
        import torch

        # torch's thread count is per thread: the match takes half the cores, the tracking keeps its own
        share = max(1, torch.get_num_threads() // 2)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="corr-crossview",
                                            initializer=torch.set_num_threads, initargs=(share,))
        self.pending: dict[str, PendingMatch] = {}

    def busy(self, camera: str) -> bool:
        """Whether a match of ``camera`` is under way (done or not, not yet taken)."""
        return camera in self.pending

    def submit(self, camera: str, run: Callable[[], Any], reason: str, anchor_labels: np.ndarray,
               feat: Any, size: tuple[int, int]) -> None:
        """Starts ``run`` (the match) for ``camera``, whose frame (``feat``, ``size``) it matches."""
        future = self._executor.submit(run)
        self.pending[camera] = PendingMatch(reason, future, anchor_labels, [(feat, size)])

    def add_frame(self, camera: str, feat: Any, size: tuple[int, int]) -> bool:
        """Remembers a later frame of a camera whose match is under way; False (and the match is
        given up) when it has waited ``max_frames`` frames."""
        job = self.pending[camera]
        if len(job.frames) >= self.max_frames:
            self.discard(camera)
            return False
        job.frames.append((feat, size))
        return True

    def take(self, camera: str) -> PendingMatch | None:
        """The camera's finished match (no longer pending), or None while it runs or without one."""
        job = self.pending.get(camera)
        if job is None or not job.future.done():
            return None
        del self.pending[camera]
        return job

    def discard(self, camera: str | None = None) -> list[str]:
        """Forgets one camera's match (None: all); a running one finishes unseen. Returns the
        cameras whose match was forgotten."""
        cams = [camera] if camera is not None else list(self.pending)
        gone = [c for c in cams if self.pending.pop(c, None) is not None]
        return gone

    def close(self) -> None:
        """Stops taking matches; a running one is left to finish in its thread."""
        self.pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


def carry_forward(tracker_cfg: Any, device: Any, frames: list[tuple[Any, tuple[int, int]]],
                  labels: np.ndarray) -> np.ndarray:
    """``labels`` of the first of ``frames`` tracked to the last one: ``(H, W)`` labels of the
    last frame (``labels`` itself when there is one frame). ``frames``: ``(features, (H, W))``
    as a camera's tracker takes them (``Tracker.step_features``); ``tracker_cfg``, ``device``:
    that tracker's settings."""
    from corr_core.propagation.tracker import Tracker

    if len(frames) == 1 or not labels.any():
        return labels
    carrier = Tracker.from_features(tracker_cfg, device)
    feat, size = frames[0]
    out = carrier.step_features(feat, labels, image_size=size)
    for feat, size in frames[1:]:
        out = carrier.step_features(feat, image_size=size)
    return out
