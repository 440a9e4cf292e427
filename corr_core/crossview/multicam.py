"""Objects given on one camera, tracked on every camera with the same ids: cross-view + temporal.

:class:`MultiCameraTracker` keeps one :class:`~corr_core.propagation.tracker.Tracker` per camera
and a :class:`~corr_core.crossview.base.Matcher`. Masks arrive on the *anchor* camera (or on any
camera, which then uses them as they are); the other cameras get the same ids through the matcher
and then track them over time. The matcher runs again for a camera when

* the anchor camera got new masks (a new object, or corrected ones),
* an object tracked on the anchor camera is missing on that camera (it was not found, was lost,
  or is hidden) and ``retry_every`` sets have passed since the camera's last match,
* ``rematch_every`` sets have passed (0: never for this reason alone).

Every step reports, per object and camera, whether it is visible and how confident the system is
(the matcher's existence probability from the camera's last match; 1 on a camera whose masks were
given), so a policy can read "object 3 is not visible in exo1". This is the logic ``corr_node``
serves in its cross-view mode; it has no ROS in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corr_core.crossview.base import Matcher
from corr_core.errors import ConfigError, MissingCameraError


@dataclass
class CameraState:
    """What the multi-camera tracker knows about one camera's objects."""

    confidence: dict[int, float] = field(default_factory=dict)  # id -> existence probability
    last_match: int = -(10**9)  # set index of the last match
    given: bool = False  # its tracker was anchored from given masks (not the matcher)


@dataclass
class StepResult:
    """One synchronised set.

    Attributes:
        labels: camera -> ``(H, W)`` labels (ids shared across cameras), or None while the camera
            tracks nothing yet.
        objects: id -> camera -> ``{"visible": bool, "confidence": float, "area": int}``.
        matched: cameras whose labels came from the matcher in this step.
    """

    labels: dict[str, np.ndarray | None]
    objects: dict[int, dict[str, dict[str, Any]]]
    matched: list[str]


class MultiCameraTracker:
    """Per-camera trackers tied together by a cross-view matcher (see the module docstring).

    Args:
        trackers: camera -> tracker (each tracks its camera over time).
        matcher: finds the anchor camera's objects in the others (None: cameras are independent,
            as without cross-view).
        anchor: the camera whose objects the others receive.
        rematch_every: re-run the matcher for every camera every n sets (0: only when needed).
        retry_every: sets between two matches of a camera that misses an object.
        min_area: pixels below which an object counts as not visible.
    """

    def __init__(self, trackers: dict[str, Any], matcher: Matcher | None, anchor: str, rematch_every: int = 0,
                 retry_every: int = 10, min_area: int = 1) -> None:
        if anchor not in trackers:
            raise ConfigError(f"anchor camera {anchor!r} is not one of the cameras {sorted(trackers)}")
        if rematch_every < 0 or retry_every < 1:
            raise ConfigError(f"rematch_every must be >= 0 and retry_every >= 1, got {rematch_every}, {retry_every}")
        self.trackers, self.matcher, self.anchor = trackers, matcher, anchor
        self.rematch_every, self.retry_every, self.min_area = int(rematch_every), int(retry_every), int(min_area)
        self.state = {cam: CameraState() for cam in trackers}
        self.sets = 0
        self._anchor_ids: tuple[int, ...] = ()
        self._last: dict[str, np.ndarray | None] = {}  # the labels of the previous set

    def reset(self, camera: str | None = None) -> None:
        """Forgets one camera's track (None: all); it waits for masks or a match again."""
        for cam in [camera] if camera else list(self.trackers):
            self.trackers[cam].reset()
            self.state[cam] = CameraState()
            self._last.pop(cam, None)

    def _due(self, cam: str, anchor_labels: np.ndarray, new_anchor: bool, previous: np.ndarray | None) -> bool:
        st = self.state[cam]
        if st.given and not new_anchor:
            return False
        if new_anchor or not self.trackers[cam].anchored:
            return True
        since = self.sets - st.last_match
        if self.rematch_every and since >= self.rematch_every:
            return True
        wanted = set(np.unique(anchor_labels).tolist()) - {0}
        have = set() if previous is None else set(_areas(previous, self.min_area))
        return bool(wanted - have) and since >= self.retry_every

    def step(self, frames: dict[str, np.ndarray], masks: dict[str, np.ndarray | None] | None = None) -> StepResult:
        """Processes one synchronised set.

        Args:
            frames: camera -> ``(H, W, 3) uint8`` RGB (every camera of the tracker).
            masks: camera -> given label map (anchors or re-anchors that camera), or None.

        Raises:
            MissingCameraError: a camera has no frame.
        """
        missing = sorted(set(self.trackers) - set(frames))
        if missing:
            raise MissingCameraError(f"multi-camera step: no frame for camera(s) {missing}")
        masks = masks or {}
        previous = self._last
        labels: dict[str, np.ndarray | None] = {}
        matched: list[str] = []
        anchor_mask = masks.get(self.anchor)
        tracker = self.trackers[self.anchor]
        if anchor_mask is not None or tracker.anchored:
            labels[self.anchor] = tracker.step(frames[self.anchor], anchor_mask)
            if anchor_mask is not None:
                self.state[self.anchor] = CameraState(given=True, last_match=self.sets)
        else:
            labels[self.anchor] = None
        self._anchor_ids = tuple(int(i) for i in getattr(tracker, "object_ids", ()))
        new_anchor = anchor_mask is not None
        for cam, trk in self.trackers.items():
            if cam == self.anchor:
                continue
            given = masks.get(cam)
            if given is not None:
                labels[cam] = trk.step(frames[cam], given)
                self.state[cam] = CameraState(given=True, last_match=self.sets)
                continue
            src = labels[self.anchor]
            if self.matcher is not None and src is not None and self._due(cam, src, new_anchor, previous.get(cam)):
                res = self.matcher.match(frames[self.anchor], src, frames[cam])
                self.state[cam] = CameraState(confidence=dict(res.confidence), last_match=self.sets)
                matched.append(cam)
                if res.labels.any():
                    labels[cam] = trk.step(frames[cam], res.labels)
                    continue
                trk.reset()  # nothing of the anchor's objects is visible here
                labels[cam] = np.zeros(frames[cam].shape[:2], res.labels.dtype)
                continue
            labels[cam] = trk.step(frames[cam]) if trk.anchored else None
        self.sets += 1
        self._last = labels
        return StepResult(labels, self._objects(labels), matched)

    def _objects(self, labels: dict[str, np.ndarray | None]) -> dict[int, dict[str, dict[str, Any]]]:
        ids: set[int] = set(self._anchor_ids)
        for lab in labels.values():
            if lab is not None:
                ids |= set(_areas(lab, 1))
        out: dict[int, dict[str, dict[str, Any]]] = {}
        for i in sorted(ids):
            per_cam = {}
            for cam, lab in labels.items():
                area = 0 if lab is None else int(np.count_nonzero(lab == i))
                st = self.state[cam]
                visible = area >= self.min_area
                conf = 1.0 if (st.given and visible) else float(st.confidence.get(i, 0.0 if not visible else 1.0))
                per_cam[cam] = {"visible": visible, "confidence": round(conf, 4), "area": area}
            out[i] = per_cam
        return out


def _areas(labels: np.ndarray, min_area: int) -> dict[int, int]:
    ids, counts = np.unique(labels, return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts, strict=True) if i != 0 and n >= min_area}
