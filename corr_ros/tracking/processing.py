"""One synchronised set of camera frames -> label maps, overlays and a summary (``corr_node``'s worker).

:class:`SetProcessor` runs in the node's worker thread. Per camera it takes the mask due for the
frame (:class:`corr_core.sync.MaskAnchors`), restarts the tracker when the frame size changed
(see :mod:`corr_ros.tracking.frames`), steps the camera's
:class:`~corr_core.propagation.tracker.Tracker`, and returns what the node publishes. One bad
camera never stops the others: its frame is dropped and counted. No ROS here: frames carry their
message header untouched, and the node turns the results into messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corr_core.sync import MaskAnchors, SyncedSet
from corr_ros.tracking.diagnostics import DropCounter
from corr_ros.tracking.frames import SizeGate, format_size

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
        summary: JSON-ready ``{"stamp_ns", "cameras": {cam: {frame_id, stamp_ns, reanchored,
            objects}}, "skipped": {cam: reason}}``.
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
    """

    def __init__(
        self,
        trackers: Mapping[str, Any],
        anchors: MaskAnchors,
        gates: Mapping[str, SizeGate],
        drops: DropCounter,
        logger: Any,
        render_overlay: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None,
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
        for cam in self.trackers:
            frame: Frame = synced.items[cam]
            stamp = int(synced.stamps_ns[cam])
            skipped, reanchored, labels = self._step(cam, frame, stamp)
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
                "objects": objects(labels),
            }
        result.processing_s = time.perf_counter() - started
        result.latency_s = time.monotonic() - max(f.received_s for f in synced.items.values())
        return result

    def _step(self, cam: str, frame: Frame, stamp: int) -> tuple[str, bool, np.ndarray | None]:
        """``(skip reason, re-anchored, labels or None)`` for one camera's frame."""
        tracker, gate = self.trackers[cam], self.gates[cam]
        if frame.epoch != self._epochs[cam]:  # the gate confirmed a size change: start over
            tracker.reset()
            self._epochs[cam] = frame.epoch
        size = (int(frame.rgb.shape[0]), int(frame.rgb.shape[1]))
        masks = self.anchors.take(cam, stamp)
        if masks is not None and tuple(masks.shape) != size:
            if tracker.anchored and tracker.image_size == size:  # a mask of another size: not for this stream
                self.drops.drop(
                    cam,
                    "mask size mismatch",
                    f"mask {format_size(masks.shape)} vs frame {format_size(size)}; the mask is discarded",
                )
                masks = None
            else:  # the frame is the odd one: keep the mask for a frame of its size
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
            labels = tracker.step(frame.rgb, masks)
        except Exception as exc:  # one bad frame must not stop the other cameras
            self.drops.drop(cam, "tracker error", f"{type(exc).__name__}: {exc}")
            return "tracker error", False, None
        if masks is not None:
            gate.anchored(size, frame.epoch)
        return "", masks is not None, labels

    def note(self, cam: str, text: str) -> None:
        """Logs an event of a camera and keeps it for diagnostics (``last_event``)."""
        self.notes[cam] = text
        self.logger.warning(f"camera '{cam}': {text}")
