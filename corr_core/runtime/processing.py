"""One synchronised set of camera frames -> label maps, overlays and a summary (``corr_node``'s worker).

The same :class:`SetProcessor` runs in ``corr_node``'s worker thread and in ``corr bag process``
(over a recorded bag), so both give the same labels for the same frames. Moved here from
``corr_ros.tracking.processing``, which re-exports it.

:class:`SetProcessor` runs in the node's worker thread. Per camera it takes the mask due for the
frame (:class:`corr_core.sync.MaskAnchors`), restarts the tracker when the frame size changed
(see :mod:`corr_core.runtime.frames`), steps the camera's
:class:`~corr_core.propagation.tracker.Tracker`, and returns what the node publishes. One bad
camera never stops the others: its frame is dropped and counted. No ROS here: frames carry their
message header untouched, and the node turns the results into messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from corr_core.runtime.drops import DropCounter
from corr_core.runtime.frames import SizeGate, format_size
from corr_core.sync import MaskAnchors, SyncedSet

if TYPE_CHECKING:
    from corr_core.runtime.batching import SetFeatures

__all__ = ["CameraOutput", "Frame", "ProcessedSet", "SetProcessor", "format_ids", "objects"]

#: Ids listed in a log line before the rest is only counted.
LOG_IDS = 16


@dataclass
class Frame:
    """One decoded camera image on its way to the worker.

    Attributes:
        header: the message header (copied to the outputs).
        rgb: ``(H, W, 3)`` uint8.
        received_s: ``time.monotonic()`` at reception.
        epoch: the camera's stream epoch (:class:`~corr_ros.tracking.frames.SizeGate`).
    """

    header: Any
    rgb: np.ndarray
    received_s: float
    epoch: int = 0


@dataclass
class CameraOutput:
    """What is published for one camera: its labels (and overlay), with the input's header."""

    header: Any
    labels: np.ndarray
    overlay: np.ndarray | None = None


@dataclass
class ProcessedSet:
    """Result of :meth:`SetProcessor.process`.

    Attributes:
        outputs: per camera that produced labels.
        summary: JSON-ready ``{"stamp_ns", "cameras": {cam: {frame_id, stamp_ns, reanchored, matched,
            objects}}, "skipped": {cam: reason}}``; in cross-view mode also ``"objects": {id: {cam:
            {visible, confidence, area}}}``, and per non-anchor camera ``match_reason`` (why it was
            matched in this set, one of ``multicam.MATCH_REASONS``, or "").
        latency_s: from the newest frame's reception to the end of processing.
        processing_s: time spent in :meth:`SetProcessor.process`.
    """

    outputs: dict[str, CameraOutput] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    latency_s: float = 0.0
    processing_s: float = 0.0


def format_ids(ids: Any, limit: int = LOG_IDS) -> str:
    """Object ids for a log line, bounded: ``"[3, 5]"``, or the first ``limit`` and a count
    (``"[1, 2, ..., 16] and 984 more (1000 ids)"``). ``ids`` may be a label map (0 is left out)."""
    values = ids if not isinstance(ids, np.ndarray) else np.unique(ids)
    listed = [int(i) for i in values if int(i) != 0]
    if len(listed) <= limit:
        return str(listed)
    head = ", ".join(map(str, listed[:limit]))
    return f"[{head}, ...] and {len(listed) - limit} more ({len(listed)} ids)"


def objects(labels: np.ndarray) -> list[dict[str, int]]:
    """``[{"id", "area"}]`` of every object (id != 0) of a label map."""
    ids, counts = np.unique(labels, return_counts=True)
    return [{"id": int(i), "area": int(n)} for i, n in zip(ids, counts, strict=True) if i != 0]


def _batch_encoder(trackers: Mapping[str, Any]) -> Any:
    """A :class:`~corr_core.runtime.batching.BatchEncoder` when the trackers hold a network (the
    batching module, and torch, are imported only then)."""
    if not trackers or any(getattr(t, "model", None) is None for t in trackers.values()):
        return None
    from corr_core.runtime.batching import BatchEncoder

    return BatchEncoder.for_trackers(trackers)


class SetProcessor:
    """Turns synchronised sets into per-camera labels (see the module docstring).

    Args:
        trackers: one :class:`~corr_core.propagation.tracker.Tracker` per camera.
        anchors: masks waiting for their frame.
        gates: one :class:`~corr_ros.tracking.frames.SizeGate` per camera (the node checks frames
            with them; the processor reports anchoring and follows their epochs).
        drops: where dropped frames and masks are counted.
        logger: has ``info``/``warning`` (an rclpy logger).
        render_overlay: ``(rgb, labels, alpha) -> rgb`` (default :func:`corr_core.viz.overlay`).
        link: cross-view mode (:class:`~corr_core.crossview.multicam.CrossViewLink`): cameras without
            masks of their own receive the anchor camera's objects through its matcher; the summary
            then holds, per object and camera, visibility and confidence (``"objects"``).
        batch: when the trackers share one network (``corr_node`` builds them so), the frames of a
            set that have the same size go through it in one batch
            (:mod:`corr_core.runtime.batching`); otherwise (or False) each tracker encodes its own.
    """

    def __init__(
        self,
        trackers: Mapping[str, Any],
        anchors: MaskAnchors,
        gates: Mapping[str, SizeGate],
        drops: DropCounter,
        logger: Any,
        render_overlay: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None,
        link: Any = None,
        batch: bool = True,
    ) -> None:
        if render_overlay is None:
            from corr_core.viz import overlay as render_overlay
        self.trackers = dict(trackers)
        self.anchors = anchors
        self.gates = dict(gates)
        self.drops = drops
        self.logger = logger
        self._render = render_overlay
        self._epochs = {cam: gate.epoch for cam, gate in self.gates.items()}
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self.notes: dict[str, str] = {}
        self._lacking: dict[str, str] = {}  # per camera, what its last cross-view match went without
        self.link = link
        self.encoder = _batch_encoder(self.trackers) if batch else None

    def anchored(self, camera: str) -> bool:
        """Whether the camera's tracker holds a mask."""
        return bool(self.trackers[camera].anchored)

    def update_config(self, **changes: Any) -> None:
        """Propagation changes, applied to every tracker (``Tracker.update_config``) before the next set."""
        with self._lock:
            self._pending.update(changes)

    def _apply_pending(self) -> None:
        with self._lock:
            changes, self._pending = self._pending, {}
        if not changes:
            return
        for tracker in self.trackers.values():
            cfg = tracker.update_config(**changes)
        self.logger.info(f"propagation settings now {cfg.to_dict()}")

    def process(
        self, synced: SyncedSet[Frame], alpha: float = 0.5, overlay_for: Callable[[str], bool] = lambda cam: False
    ) -> ProcessedSet:
        """Processes one set; cameras that cannot produce labels are skipped and counted.

        Args:
            synced: one :class:`Frame` per camera.
            alpha: overlay opacity.
            overlay_for: whether to render the overlay of a camera (someone subscribes).
        """
        started = time.perf_counter()
        self._apply_pending()
        result = ProcessedSet(summary={"stamp_ns": int(synced.stamp_ns), "cameras": {}, "skipped": {}})
        cams = list(self.trackers)
        link = self.link
        if link is not None:  # the anchor first: the others may receive its objects
            cams = [link.anchor] + [c for c in cams if c != link.anchor]
        labels_by_cam: dict[str, np.ndarray | None] = {}
        new_anchor = False
        feats = self._set_features(synced)
        for cam in cams:
            frame: Frame = synced.items[cam]
            stamp = int(synced.stamps_ns[cam])
            masks = self.anchors.take(cam, stamp)
            given = masks is not None
            reason = ""
            if link is not None and cam != link.anchor and masks is None:
                masks, reason = self._crossview(cam, synced, labels_by_cam, new_anchor)
            skipped, reanchored, labels = self._step(cam, frame, stamp, masks, given, feats, reason == "missing")
            if link is not None and given and labels is not None:
                link.given(cam)
                new_anchor = new_anchor or cam == link.anchor
            labels_by_cam[cam] = labels
            if labels is None:
                result.summary["skipped"][cam] = skipped
                continue
            image = None
            if overlay_for(cam):
                try:
                    image = self._render(frame.rgb, labels, alpha)
                except Exception as exc:  # the labels still go out
                    self.drops.drop(cam, "overlay error", f"{type(exc).__name__}: {exc}")
            result.outputs[cam] = CameraOutput(frame.header, labels, image)
            result.summary["cameras"][cam] = {
                "frame_id": frame.header.frame_id,
                "stamp_ns": stamp,
                "reanchored": reanchored,
                "matched": bool(reason),
                **({"match_reason": reason, "geometry": link.state[cam].geometry, "depth": link.state[cam].depth}
                   if link is not None and cam != link.anchor else {}),
                "objects": objects(labels),
            }
        if link is not None:
            ids = tuple(int(i) for i in getattr(self.trackers[link.anchor], "object_ids", ()))
            per_object = link.end_set(labels_by_cam, ids)
            result.summary["objects"] = {str(i): cams_ for i, cams_ in per_object.items()}
        result.processing_s = time.perf_counter() - started
        result.latency_s = time.monotonic() - max(f.received_s for f in synced.items.values())
        return result

    def _crossview(self, cam: str, synced: SyncedSet[Frame], labels: dict[str, np.ndarray | None],
                   new_anchor: bool) -> tuple[np.ndarray | None, str]:
        """Masks for ``cam`` from the anchor camera through the matcher, when due: ``(masks or None,
        why it was matched or "")``. A ``"missing"`` retry gives only the missing objects (the
        tracker merges them, the tracked objects keep their tracks). Otherwise, when the matcher
        finds none of the anchor's objects, the camera's track ends (its labels come out empty)
        until a later match finds one."""
        link, tracker = self.link, self.trackers[cam]
        src = labels.get(link.anchor)
        stamps = {c: int(t) for c, t in synced.stamps_ns.items()}
        poses = link.poses_at(stamps) if link.rig is not None else None
        why = "" if src is None else link.due(cam, src, tracker.anchored, new_anchor, poses)
        if not why:
            return None, ""
        try:
            depth, poses = _set_geometry(link, cam, stamps)
            res = link.match(cam, synced.items[link.anchor].rgb, src, synced.items[cam].rgb, depth, poses, why)
        except Exception as exc:  # the camera keeps tracking what it had
            self.drops.drop(cam, "cross-view error", f"{type(exc).__name__}: {exc}")
            return None, ""
        lacking = link.state[cam].lacking
        if lacking and lacking != self._lacking.get(cam):  # said once, until it changes
            how = "with poses but" if link.state[cam].geometry else "from images alone,"
            self.note(cam, f"matched {how} without {lacking}")
        self._lacking[cam] = lacking
        if why == "missing" or res.labels.any():  # a retry that finds nothing leaves the track as it is
            return res.labels, why
        tracker.reset()
        return np.zeros(synced.items[cam].rgb.shape[:2], res.labels.dtype), why

    def _set_features(self, synced: SyncedSet[Frame]) -> SetFeatures | None:
        """The set's features, batched over the cameras likely to be stepped: those anchored or
        with a mask waiting (in cross-view mode, every camera once the anchor camera is)."""
        if self.encoder is None:
            return None
        ready = {cam: bool(self.trackers[cam].anchored) or self.anchors.has(cam) for cam in self.trackers}
        link = self.link
        if link is not None and ready.get(link.anchor):
            ready = dict.fromkeys(ready, True)
        frames = {cam: f.rgb for cam, f in synced.items.items() if cam in self.trackers}
        from corr_core.runtime.batching import SetFeatures

        return SetFeatures(self.encoder, self.trackers, frames, [c for c, ok in ready.items() if ok])

    def _step(self, cam: str, frame: Frame, stamp: int, masks: np.ndarray | None,
              given: bool = True, feats: SetFeatures | None = None,
              merge: bool = False) -> tuple[str, bool, np.ndarray | None]:
        """``(skip reason, re-anchored, labels or None)`` for one camera's frame; ``masks`` were
        taken from the anchors (``given``) or come from the cross-view matcher (``merge``: they
        only add objects to the camera's track, ``Tracker.step(..., merge=True)``); ``feats``: the
        set's batched features (None: the tracker encodes the frame itself)."""
        tracker, gate = self.trackers[cam], self.gates[cam]
        if frame.epoch != self._epochs[cam]:  # the gate confirmed a size change: start over
            tracker.reset()
            self._epochs[cam] = frame.epoch
            if self.link is not None:
                self.link.forget(cam)
        size = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        if not given and not merge and masks is not None and not masks.any():  # the matcher found nothing here
            return "", False, masks
        if masks is not None and tuple(masks.shape) != size:
            if tracker.anchored and tracker.image_size == size:  # a mask of another size: not for this stream
                self.drops.drop(
                    cam,
                    "mask size mismatch",
                    f"mask {format_size(masks.shape)} vs frame {format_size(size)}; the mask is discarded",
                )
                masks = None
            else:  # the frame is the odd one: keep the mask for a frame of its size
                if given:
                    self.anchors.restore(cam, stamp, masks)
                self.drops.drop(
                    cam,
                    "size mismatch",
                    f"image {format_size(size)} differs from the mask waiting for this camera "
                    f"({format_size(masks.shape)})",
                )
                return "size mismatch", False, None
        if masks is None and not tracker.anchored:
            self.drops.drop(cam, "no initial mask yet", f"frame at {stamp} ns; publish one on {cam}/masks_in")
            return "no initial mask yet", False, None
        if masks is None and tracker.image_size != size:  # a new size ahead of its mask's stamp
            self.drops.drop(
                cam,
                "size mismatch",
                f"image {format_size(size)} differs from the tracked {format_size(tracker.image_size)}",
            )
            return "size mismatch", False, None
        if masks is not None and tracker.anchored and tracker.image_size != size:
            old = tracker.image_size
            tracker.reset()
            self.note(cam, f"size changed from {format_size(old)} to {format_size(size)}: re-anchored from a mask")
        try:
            extra = {"merge": True} if merge else {}  # only a cross-view retry needs the tracker's merge
            if feats is None:
                labels = tracker.step(frame.rgb, masks, **extra)
            else:
                labels = tracker.step_features(feats.get(cam), masks, image_size=size, **extra)
        except Exception as exc:  # one bad frame must not stop the other cameras
            self.drops.drop(cam, "tracker error", f"{type(exc).__name__}: {exc}")
            return "tracker error", False, None
        if masks is not None:
            gate.anchored(size, frame.epoch)
        return "", masks is not None and (not merge or bool(masks.any())), labels

    def note(self, cam: str, text: str) -> None:
        """Logs an event of a camera and keeps it for diagnostics (``last_event``)."""
        self.notes[cam] = text
        self.logger.warning(f"camera '{cam}': {text}")


def _set_geometry(link: Any, cam: str, stamps: dict[str, int]) -> tuple[Any, Any]:
    """The anchor depth and moving cameras' poses of a set for a match of ``cam``, waiting up to
    ``link.geometry_wait_s`` for what the rig expects and has not got yet (they travel on their
    own topics and may land just after the images)."""
    if link.rig is None:
        return None, None
    deadline = time.monotonic() + link.geometry_wait_s
    while True:
        depth, poses = link.depth_at(stamps[link.anchor]), link.poses_at(stamps)
        if not link.lacking(cam, depth, poses) or time.monotonic() >= deadline:
            return depth, poses
        time.sleep(0.005)
