"""Objects given on one camera, tracked on every camera with the same ids: cross-view + temporal.

:class:`MultiCameraTracker` keeps one :class:`~corr_core.propagation.tracker.Tracker` per camera
and a :class:`~corr_core.crossview.base.Matcher`. Masks arrive on the *anchor* camera (or on any
camera, which then uses them as they are); the other cameras get the same ids through the matcher
and then track them over time. The matcher runs again for a camera when

* the anchor camera got new masks (a new object, or corrected ones),
* an object tracked on the anchor camera is missing on that camera (it was not found, was lost,
  or is hidden) and ``retry_every`` sets have passed since the camera's last match: this match only
  adds what is missing (the objects the camera tracks keep their tracks, see
  ``Tracker.step(..., merge=True)``),
* ``rematch_every`` sets have passed (0: never for this reason alone),
* its last match went without the cameras' geometry (intrinsics or a pose had not arrived yet)
  and the rig now has it.

Every step reports, per object and camera, whether it is visible and how confident the system is
(the matcher's existence probability from the camera's last match; 1 on a camera whose masks were
given), so a policy can read "object 3 is not visible in exo1". This is the logic ``corr_node``
serves in its cross-view mode; it has no ROS in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corr_core.crossview.base import Matcher, MatchResult
from corr_core.crossview.rig import CameraRig
from corr_core.errors import ConfigError, DataError, MissingCameraError, ShapeMismatchError
from corr_core.sync import NearestStamp

#: Why a camera is matched (:meth:`CrossViewLink.due`): the anchor camera got masks; the camera
#: tracks nothing yet; its last match went without geometry the rig now has; ``rematch_every`` sets
#: passed; an object of the anchor is missing on it (only the missing objects are added).
MATCH_REASONS = ("new anchor", "first", "geometry", "rematch", "missing")


@dataclass
class CameraState:
    """What the multi-camera tracker knows about one camera's objects."""

    confidence: dict[int, float] = field(default_factory=dict)  # id -> existence probability
    last_match: int = -(10**9)  # set index of the last match
    given: bool = False  # its tracker was anchored from given masks (not the matcher)
    geometry: bool = False  # its last match knew both cameras' calibration (epipolar band)
    depth: bool = False  # ... and the anchor camera's depth at the matched frame
    lacking: str = ""  # with a rig: what its last match went without ("" when nothing)


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


class CrossViewLink:
    """When each camera is matched to the anchor camera, and what is known of every object.

    The scheduling and bookkeeping of the module docstring, apart from the trackers, so that
    :class:`MultiCameraTracker` and ``corr_node`` (whose trackers also handle frame sizes and
    masks arriving over topics) share it.

    Args:
        matcher: finds the anchor camera's objects in another camera.
        anchor: the camera whose objects the others receive.
        cameras: every camera, the anchor included.
        rematch_every: re-run the matcher for every camera every n sets (0: only when needed).
        retry_every: sets between two matches of a camera that misses an object.
        min_area: pixels below which an object counts as not visible.
        rig: the cameras' calibration (:class:`~corr_core.crossview.rig.CameraRig`): matches keep
            to the epipolar band once both cameras have intrinsics; None: images only.
        slop_s: with a rig, an anchor depth image (:meth:`put_depth`) or a moving camera's pose
            (:meth:`put_pose`) serves the frame whose stamp is within this many seconds of its own
            (:meth:`depth_at`, :meth:`poses_at`).
        expect_depth: with a rig, the anchor camera gives depth (a match without it says so in
            :attr:`CameraState.lacking`).
        geometry_wait_s: with a rig, how long a due match of a live set may wait for that set's
            camera_info, poses and depth, which travel on their own topics (``corr_node``'s worker).
    """

    def __init__(self, matcher: Matcher, anchor: str, cameras: list[str], rematch_every: int = 0,
                 retry_every: int = 10, min_area: int = 1, rig: CameraRig | None = None,
                 slop_s: float = 0.02, expect_depth: bool = False, geometry_wait_s: float = 0.0) -> None:
        if anchor not in cameras:
            raise ConfigError(f"anchor camera {anchor!r} is not one of the cameras {sorted(cameras)}")
        if rematch_every < 0 or retry_every < 1:
            raise ConfigError(f"rematch_every must be >= 0 and retry_every >= 1, got {rematch_every}, {retry_every}")
        self.matcher, self.anchor, self.cameras = matcher, anchor, list(cameras)
        self.rematch_every, self.retry_every, self.min_area = int(rematch_every), int(retry_every), int(min_area)
        if rig is not None:
            rig.check_cameras(self.cameras)
        self.rig = rig
        self.depth: NearestStamp[np.ndarray] = NearestStamp(8)
        self.pose_history: dict[str, NearestStamp[np.ndarray]] = {
            cam: NearestStamp(32) for cam in (rig.moving if rig is not None else ())}
        self.slop_ns = int(round(float(slop_s) * 1e9))
        self.expect_depth = bool(expect_depth) and rig is not None
        if not 0.0 <= geometry_wait_s <= 10.0:
            raise ConfigError(f"geometry_wait_s must be in [0, 10] s, got {geometry_wait_s}")
        self.geometry_wait_s = float(geometry_wait_s)
        self.state = {cam: CameraState() for cam in self.cameras}
        self.sets = 0
        self.anchor_ids: tuple[int, ...] = ()
        self.last: dict[str, np.ndarray | None] = {}  # the labels of the previous set

    def forget(self, camera: str) -> None:
        """A camera's track was reset: it is matched again at the next set."""
        self.state[camera] = CameraState()
        self.last.pop(camera, None)

    def given(self, camera: str) -> None:
        """A camera's tracker was anchored from given masks (it is not matched until the anchor's change)."""
        self.state[camera] = CameraState(given=True, last_match=self.sets)

    def resumed(self, camera: str) -> None:
        """A camera's tracker restarted from its own last labels (``corr bag process --resume``):
        they came from the matcher, so it is matched again when an object goes missing, as before
        (:meth:`given` would leave it alone until the anchor changes)."""
        self.state[camera] = CameraState(last_match=self.sets)

    def due(self, camera: str, anchor_labels: np.ndarray, anchored: bool, new_anchor: bool,
            poses: dict[str, np.ndarray] | None = None) -> str:
        """Why ``camera`` should be matched to the anchor's ``anchor_labels`` in this set, or ""
        (``poses``: the moving cameras' poses at this set, see :meth:`match`): one of
        :data:`MATCH_REASONS`. A ``"missing"`` match only adds the objects the camera lacks
        (:meth:`missing`); the others replace the camera's track.
        """
        st = self.state[camera]
        if st.given and not new_anchor:
            return ""
        if new_anchor:
            return "new anchor"
        if not anchored:
            return "first"
        if self.rig is not None and not st.geometry and self.rig.pair(self.anchor, camera, None, poses) is not None:
            return "geometry"  # matched before the geometry was known: a look-alike may have been taken
        since = self.sets - st.last_match
        if self.rematch_every and since >= self.rematch_every:
            return "rematch"
        return "missing" if self.missing(camera, anchor_labels) and since >= self.retry_every else ""

    def missing(self, camera: str, anchor_labels: np.ndarray) -> set[int]:
        """Ids the anchor camera tracks (at least ``min_area`` pixels there) that ``camera``'s
        labels of the previous set lack (fewer than ``min_area`` pixels)."""
        wanted = set(_areas(anchor_labels, 1))
        previous = self.last.get(camera)
        return wanted - (set() if previous is None else set(_areas(previous, self.min_area)))

    def put_depth(self, stamp_ns: int, depth: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
        """The anchor camera's depth image at ``stamp_ns``: ``(H, W)`` float metres registered to
        its colour image (0 or NaN where unknown).

        Raises:
            ShapeMismatchError: ``image_size``, the anchor's image size ``(H, W)`` where known,
                differs from the depth's (not registered to the colour image).
        """
        if image_size is not None and tuple(depth.shape) != tuple(image_size):
            h, w = depth.shape[:2]
            raise ShapeMismatchError(f"depth image {w}x{h} does not match the camera's {image_size[1]}x{image_size[0]} "
                                     "images: it must be registered to the colour image")
        self.depth.put(stamp_ns, depth)

    def depth_at(self, stamp_ns: int) -> np.ndarray | None:
        """The anchor depth image nearest the anchor frame at ``stamp_ns`` (within the slop), or None."""
        return self.depth.nearest(stamp_ns, self.slop_ns)

    def put_pose(self, camera: str, stamp_ns: int, T_frame_cam: np.ndarray, frame_id: str = "") -> None:
        """A moving camera's ``(4, 4)`` optical-frame pose in the rig's frame at ``stamp_ns``
        (cameras the rig does not mark moving are ignored).

        Raises:
            DataError: ``frame_id`` is not the rig's frame (where both are named).
        """
        if camera not in self.pose_history:
            return
        frame = self.rig.frame if self.rig is not None else ""
        if frame and frame_id and frame_id != frame:
            raise DataError(f"pose in frame {frame_id!r}, the rig's frame is {frame!r} ({self.rig.source})")
        self.pose_history[camera].put(stamp_ns, np.asarray(T_frame_cam, np.float64))

    def poses_at(self, stamps_ns: dict[str, int]) -> dict[str, np.ndarray]:
        """The moving cameras' poses nearest each camera's frame stamp (within the slop); a camera
        without one is left out (its matches go without geometry)."""
        out = {}
        for cam, history in self.pose_history.items():
            pose = history.nearest(int(stamps_ns[cam]), self.slop_ns) if cam in stamps_ns else None
            if pose is not None:
                out[cam] = pose
        return out

    def lacking(self, camera: str, anchor_depth: np.ndarray | None = None,
                poses: dict[str, np.ndarray] | None = None) -> list[str]:
        """What a match of ``camera`` with this depth and these poses would go without (empty
        without a rig, or with everything the rig expects)."""
        if self.rig is None:
            return []
        out = self.rig.missing(self.anchor, camera, poses)
        if self.expect_depth and anchor_depth is None:
            out.append(f"{self.anchor}'s depth (within the slop)")
        return out

    def match(self, camera: str, anchor_rgb: np.ndarray, anchor_labels: np.ndarray, rgb: np.ndarray,
              anchor_depth: np.ndarray | None = None, poses: dict[str, np.ndarray] | None = None,
              reason: str = "") -> MatchResult:
        """Runs the matcher for ``camera`` (with both cameras' geometry when the rig has it, with
        ``anchor_depth``, the anchor frame's depth in metres, and ``poses``, the moving cameras'
        poses at this set, where given) and records its confidences.

        ``reason``: why it is matched (:meth:`due`). A ``"missing"`` retry still matches every
        object (so that one-to-one assignment sees them all), but the returned labels hold only
        the missing ones (:meth:`missing`), for the tracker to merge, and the other objects keep
        the confidence of the match that placed them. Any other reason: all of
        ``anchor_labels``'s objects.
        """
        geometry = self.rig.pair(self.anchor, camera, anchor_depth, poses) if self.rig is not None else None
        res = self.matcher.match(anchor_rgb, anchor_labels, rgb, geometry=geometry)
        lacking = self.lacking(camera, anchor_depth, poses)
        confidence = dict(res.confidence)
        if reason == "missing":
            only = self.missing(camera, anchor_labels)
            res.labels = np.where(np.isin(res.labels, sorted(only)), res.labels, 0).astype(res.labels.dtype)
            kept = self.state[camera].confidence
            confidence = {i: (c if i in only else kept.get(i, c)) for i, c in confidence.items()}
        self.state[camera] = CameraState(confidence=confidence, last_match=self.sets,
                                         geometry=geometry is not None,
                                         depth=geometry is not None and geometry.src_depth is not None,
                                         lacking=", ".join(lacking))
        return res

    def end_set(self, labels: dict[str, np.ndarray | None], anchor_ids: tuple[int, ...]) -> dict[int, dict[str, dict[str, Any]]]:
        """Closes a set: remembers its labels; returns id -> camera -> visible, confidence, area."""
        self.anchor_ids = tuple(anchor_ids)
        self.last = dict(labels)
        self.sets += 1
        ids: set[int] = set(self.anchor_ids)
        for lab in labels.values():
            if lab is not None:
                ids |= set(_areas(lab, 1))
        out: dict[int, dict[str, dict[str, Any]]] = {}
        for i in sorted(ids):
            per_cam = {}
            for cam in self.cameras:
                lab = labels.get(cam)
                area = 0 if lab is None else int(np.count_nonzero(lab == i))
                st = self.state[cam]
                visible = area >= self.min_area
                conf = 1.0 if (st.given and visible) else float(st.confidence.get(i, 0.0 if not visible else 1.0))
                per_cam[cam] = {"visible": visible, "confidence": round(conf, 4), "area": area}
            out[i] = per_cam
        return out


class MultiCameraTracker:
    """Per-camera trackers tied together by a cross-view matcher (see the module docstring).

    Args:
        trackers: camera -> tracker (each tracks its camera over time).
        matcher: finds the anchor camera's objects in the others (None: cameras are independent,
            as without cross-view).
        anchor: the camera whose objects the others receive.
        rematch_every, retry_every, min_area, rig: see :class:`CrossViewLink`.
    """

    def __init__(self, trackers: dict[str, Any], matcher: Matcher | None, anchor: str, rematch_every: int = 0,
                 retry_every: int = 10, min_area: int = 1, rig: CameraRig | None = None) -> None:
        self.trackers, self.matcher, self.anchor = trackers, matcher, anchor
        self.link = CrossViewLink(matcher, anchor, list(trackers), rematch_every, retry_every, min_area, rig)

    def reset(self, camera: str | None = None) -> None:
        """Forgets one camera's track (None: all); it waits for masks or a match again."""
        for cam in [camera] if camera else list(self.trackers):
            self.trackers[cam].reset()
            self.link.forget(cam)

    def step(self, frames: dict[str, np.ndarray], masks: dict[str, np.ndarray | None] | None = None,
             anchor_depth: np.ndarray | None = None, poses: dict[str, np.ndarray] | None = None) -> StepResult:
        """Processes one synchronised set.

        Args:
            frames: camera -> ``(H, W, 3) uint8`` RGB (every camera of the tracker).
            masks: camera -> given label map (anchors or re-anchors that camera), or None.
            anchor_depth: the anchor frame's ``(H, W)`` depth in metres, registered to it (used by
                matches with a rig), or None.
            poses: the rig's moving cameras -> their ``(4, 4)`` pose in the rig's frame at this set.

        Raises:
            MissingCameraError: a camera has no frame.
        """
        missing = sorted(set(self.trackers) - set(frames))
        if missing:
            raise MissingCameraError(f"multi-camera step: no frame for camera(s) {missing}")
        masks = masks or {}
        link, labels, matched = self.link, {}, []
        anchor_mask = masks.get(self.anchor)
        tracker = self.trackers[self.anchor]
        labels[self.anchor] = tracker.step(frames[self.anchor], anchor_mask) if (
            anchor_mask is not None or tracker.anchored) else None
        if anchor_mask is not None:
            link.given(self.anchor)
        for cam, trk in self.trackers.items():
            if cam == self.anchor:
                continue
            given = masks.get(cam)
            src = labels[self.anchor]
            if given is not None:
                labels[cam] = trk.step(frames[cam], given)
                link.given(cam)
            elif self.matcher is not None and src is not None and (
                    why := link.due(cam, src, trk.anchored, anchor_mask is not None, poses)):
                res = link.match(cam, frames[self.anchor], src, frames[cam], anchor_depth, poses, why)
                matched.append(cam)
                if why == "missing":  # keep the tracked objects, add the missing ones
                    labels[cam] = trk.step(frames[cam], res.labels, merge=True)
                elif res.labels.any():
                    labels[cam] = trk.step(frames[cam], res.labels)
                else:  # nothing of the anchor's objects is visible here
                    trk.reset()
                    labels[cam] = np.zeros(frames[cam].shape[:2], res.labels.dtype)
            else:
                labels[cam] = trk.step(frames[cam]) if trk.anchored else None
        objects = link.end_set(labels, tuple(int(i) for i in getattr(tracker, "object_ids", ())))
        return StepResult(labels, objects, matched)


def _areas(labels: np.ndarray, min_area: int) -> dict[int, int]:
    ids, counts = np.unique(labels, return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts, strict=True) if i != 0 and n >= min_area}


#: How :func:`build_link` names its settings in errors (``corr_node`` and ``corr bag process``
#: pass their parameter or flag names).
LINK_SETTING_NAMES = {"checkpoint": "the cross-view checkpoint", "anchor": "the anchor camera",
                      "rig": "a camera rig", "depth": "depth"}


def build_link(checkpoint: str | Path, cameras: list[str], anchor: str | None = None, device: str = "cpu",
               proposer: str = "graph", rig: str | Path | None = None, depth: bool = False, rematch_every: int = 0,
               retry_every: int = 10, slop_s: float = 0.05, names: dict[str, str] | None = None,
               log: Any = None, geometry_wait_s: float = 0.0) -> CrossViewLink:
    """The cross-view link ``corr_node`` and ``corr bag process`` serve: a PCC matcher from
    ``checkpoint`` (its calibrated thresholds), proposals, and optionally a camera rig file.

    Args:
        checkpoint: PCC correspondence checkpoint.
        cameras: every camera (at least two).
        anchor: the camera whose objects the others receive (None: the first).
        proposer: target proposals ("graph", or "none").
        rig: camera rig file (:mod:`corr_core.crossview.rig`), or None for images only.
        depth: the anchor camera's depth narrows the bands (needs ``rig``).
        rematch_every, retry_every, slop_s, geometry_wait_s: see :class:`CrossViewLink`.
        names: how to name the settings in errors (keys of :data:`LINK_SETTING_NAMES`).
        log: called with one line describing the link (None: nothing).

    Raises:
        ConfigError: an anchor that is not a camera, fewer than two cameras, depth without a rig,
            a bad rig file. CheckpointError: a missing or foreign checkpoint.
    """
    n = {**LINK_SETTING_NAMES, **(names or {})}
    anchor = anchor or cameras[0]
    if anchor not in cameras:
        raise ConfigError(f"{n['anchor']} is {anchor!r}, not one of the cameras {cameras}")
    if len(cameras) < 2:
        raise ConfigError(f"{n['checkpoint']} needs at least two cameras, got {cameras}")
    if depth and not rig:
        raise ConfigError(f"{n['depth']} needs {n['rig']} (depth narrows the epipolar band of calibrated "
                          "cameras; without a rig there is none)")
    from corr_core.crossview.matcher import CrossViewMatcher  # imports torch and the model
    from corr_core.proposals import build_proposer

    matcher = CrossViewMatcher.from_checkpoint(checkpoint, device,
                                               proposer=None if proposer == "none" else build_proposer(proposer))
    camera_rig = CameraRig.from_yaml(rig) if rig else None
    if log is not None:
        log(f"cross-view mode: objects of '{anchor}' matched into {[c for c in cameras if c != anchor]} with "
            f"{checkpoint} (proposals: {proposer}; rig: {camera_rig.source if camera_rig else 'none'}"
            f"{f', depth from {anchor}' if depth else ''})")
    return CrossViewLink(matcher, anchor, cameras, rematch_every, retry_every, rig=camera_rig, slop_s=slop_s,
                         expect_depth=depth, geometry_wait_s=geometry_wait_s)
