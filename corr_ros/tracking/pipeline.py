"""What ``corr_node`` holds while configured: its topics, the sync worker, and the input callbacks.

A :class:`CameraPipeline` is built by the node's configure transition and destroyed by cleanup. It
subscribes ``<cam>/masks_in`` and ``<cam>/image_raw`` (or ``/compressed``), decodes messages,
checks frame sizes (:class:`~corr_ros.tracking.frames.SizeGate`), feeds the synchroniser and its
depth-1 worker (:class:`corr_core.handoff.NewestSetWorker`), and publishes what the
:class:`~corr_ros.tracking.processing.SetProcessor` makes of each set: ``<cam>/labels``,
``<cam>/overlay`` (while someone subscribes) and ``corr/summary``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String

from corr_core.errors import DataError, UnknownEncodingError
from corr_core.geometry import pose_matrix
from corr_core.handoff import NewestSetWorker, WorkerStats
from corr_core.sync import MaskAnchors, SyncedSet
from corr_core.topics import DEPTH, POSE, camera_topic
from corr_ros.conversions import (
    compressed_to_rgb,
    copy_header,
    image_to_depth,
    image_to_labels,
    image_to_rgb,
    labels_to_image,
    rgb_to_image,
    stamp_to_ns,
)
from corr_ros.tracking.diagnostics import CameraReport, DropCounter, Timings
from corr_ros.tracking.frames import SizeGate, format_size
from corr_ros.tracking.processing import Frame, SetProcessor, format_ids

__all__ = ["SUMMARY_TOPIC", "CameraPipeline", "camera_topics"]

#: Longest wait (s) for the set in progress when the node deactivates or cleans up.
STOP_TIMEOUT_S = 300.0
#: Seconds between two log lines while waiting for it.
STOP_POLL_S = 5.0
#: The summary topic (std_msgs/String JSON), relative to the node's namespace.
SUMMARY_TOPIC = "corr/summary"


def camera_topics(cam: str, compressed: bool = False) -> dict[str, tuple[str, str]]:
    """A camera's topics, relative to the node's namespace: ``{role: (topic, message type)}`` for
    ``image`` (in), ``masks`` (in), ``camera_info`` (in, in cross-view mode with a camera rig),
    ``depth`` (in, the anchor camera's, in cross-view mode with a rig and ``crossview_depth``),
    ``pose`` (in, for the rig's moving cameras),
    ``labels`` (out) and ``overlay`` (out). The pipeline subscribes and publishes exactly these; the
    launch test checks remaps against them."""
    image = ("sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image")
    return {
        "image": (f"{cam}/image_raw/compressed" if compressed else f"{cam}/image_raw", image),
        "masks": (f"{cam}/masks_in", "sensor_msgs/msg/Image"),
        "camera_info": (f"{cam}/camera_info", "sensor_msgs/msg/CameraInfo"),
        "depth": (camera_topic(cam, DEPTH), "sensor_msgs/msg/Image"),
        "pose": (camera_topic(cam, POSE), "geometry_msgs/msg/PoseStamped"),
        "labels": (f"{cam}/labels", "sensor_msgs/msg/Image"),
        "overlay": (f"{cam}/overlay", "sensor_msgs/msg/Image"),
    }


class CameraPipeline:
    """Topics, callbacks and worker of a configured ``corr_node`` (see the module docstring).

    Args:
        node: the lifecycle node that owns the topics.
        processor: turns sets into labels (holds the trackers, anchors and gates).
        drops: drop counter shared with the processor.
        timings: where processed sets' latency and processing time go.
        slop_s: approximate-sync slop.
        queue_size: pending images per camera in the synchroniser.
        qos: ``{"input", "masks", "output"}`` profiles.
        compressed: subscribe ``<cam>/image_raw/compressed`` (CompressedImage).
        depth: subscribe the anchor camera's depth image (cross-view mode with a rig).
        overlay_settings: returns ``(alpha, publish_overlay)`` (live parameters).
    """

    def __init__(
        self,
        node: LifecycleNode,
        processor: SetProcessor,
        drops: DropCounter,
        timings: Timings,
        slop_s: float,
        queue_size: int,
        qos: dict[str, QoSProfile],
        compressed: bool,
        overlay_settings: Callable[[], tuple[float, bool]],
        depth: bool = False,
    ) -> None:
        self.node = node
        self.processor = processor
        self.cameras = list(processor.trackers)
        self.anchors: MaskAnchors = processor.anchors
        self.gates: dict[str, SizeGate] = processor.gates
        self.drops = drops
        self.timings = timings
        self._overlay_settings = overlay_settings
        self.active = False
        self.activated_at = time.monotonic()
        self.last_rx: dict[str, float] = {}
        self.frames_rx: dict[str, int] = {}
        self.worker: NewestSetWorker[Frame] = NewestSetWorker(
            self.cameras, slop_s, queue_size, self._process_set, on_error=self._on_worker_error, name="corr_worker"
        )
        self._subs: list[Any] = []
        self.image_topics: dict[str, str] = {}
        self._label_pubs: dict[str, Any] = {}
        self._overlay_pubs: dict[str, Any] = {}
        # masks_in first: when a mask and an image are ready in the same executor wake-up, the
        # executor serves subscriptions in creation order, so the mask is stored before the image.
        topics = {cam: camera_topics(cam, compressed) for cam in self.cameras}
        for cam in self.cameras:
            self._subs.append(
                node.create_subscription(
                    Image, topics[cam]["masks"][0], lambda msg, cam=cam: self.on_masks(cam, msg), qos["masks"]
                )
            )
        rig = getattr(processor.link, "rig", None)
        if rig is not None:  # the intrinsics the cross-view rig waits for
            for cam in self.cameras:
                self._subs.append(node.create_subscription(
                    CameraInfo, topics[cam]["camera_info"][0], lambda msg, cam=cam: self.on_camera_info(cam, msg),
                    qos["input"]))
            # head or wrist cameras: a pose with each frame (subscribed before the images, like the
            # masks, so a pose ready in the same wake-up as its image is stored first)
            for cam in sorted(rig.moving & set(self.cameras)):
                self._subs.append(node.create_subscription(
                    PoseStamped, topics[cam]["pose"][0], lambda msg, cam=cam: self.on_pose(cam, msg), qos["input"]))
            if depth:
                anchor = processor.link.anchor
                self._subs.append(node.create_subscription(
                    Image, topics[anchor]["depth"][0], lambda msg: self.on_depth(anchor, msg), qos["input"]))
        for cam in self.cameras:
            sub = node.create_subscription(
                CompressedImage if compressed else Image,
                topics[cam]["image"][0],
                lambda msg, cam=cam: self.on_image(cam, msg),
                qos["input"],
            )
            self.image_topics[cam] = sub.topic_name
            self._subs.append(sub)
            self._label_pubs[cam] = node.create_lifecycle_publisher(Image, topics[cam]["labels"][0], qos["output"])
            self._overlay_pubs[cam] = node.create_lifecycle_publisher(Image, topics[cam]["overlay"][0], qos["output"])
        self._summary_pub = node.create_lifecycle_publisher(String, SUMMARY_TOPIC, qos["output"])

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Starts processing (activate)."""
        self.activated_at = time.monotonic()
        self.last_rx = {}
        self.worker.start()
        self.active = True

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stops processing (deactivate) once the worker has finished the set in progress, so the
        labels of every set it processed are published before the publishers go.

        Waits up to ``timeout_s`` (default :data:`STOP_TIMEOUT_S`), logging every
        :data:`STOP_POLL_S` seconds while the set runs; False if the worker is still busy then.
        """
        self.active = False
        deadline = time.monotonic() + (STOP_TIMEOUT_S if timeout_s is None else timeout_s)
        started = time.monotonic()
        while not self.worker.stop(timeout=max(0.0, min(STOP_POLL_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                self.node.get_logger().error(
                    f"the worker is still processing a set after {time.monotonic() - started:.0f} s; stopping "
                    "without it (its labels will not be published)"
                )
                return False
            self.node.get_logger().warning(
                f"stopping: the worker is still processing a set ({time.monotonic() - started:.0f} s); waiting for "
                "it, so its labels are published"
            )
        return True

    def destroy(self, wait_s: float | None = None) -> None:
        """Stops the worker (after its set in progress, up to ``wait_s``: see :meth:`stop`) and
        destroys the topics (cleanup)."""
        self.stop(wait_s)
        for sub in self._subs:
            self.node.destroy_subscription(sub)
        for pub in [*self._label_pubs.values(), *self._overlay_pubs.values(), self._summary_pub]:
            self.node.destroy_lifecycle_publisher(pub)
        self._subs, self._label_pubs, self._overlay_pubs = [], {}, {}

    def set_slop(self, slop_s: float) -> None:
        """Changes the sync, mask-matching and depth-matching slop (live)."""
        self.worker.set_slop(slop_s)
        self.anchors.slop_ns = int(round(slop_s * 1e9))
        if self.processor.link is not None:
            self.processor.link.slop_ns = self.anchors.slop_ns

    def set_size_change_frames(self, frames: int) -> None:
        """Changes :attr:`SizeGate.change_after` of every camera (live)."""
        for gate in self.gates.values():
            gate.change_after = int(frames)

    # ------------------------------------------------------------------ state for diagnostics
    def stats(self) -> WorkerStats:
        """The worker's counters."""
        return self.worker.stats()

    def missing_cameras(self, timeout_s: float) -> list[str]:
        """Cameras without an image for more than ``timeout_s`` while active (0: never missing)."""
        if not self.active or timeout_s <= 0:
            return []
        now = time.monotonic()
        return [c for c in self.cameras if now - self.last_rx.get(c, self.activated_at) > timeout_s]

    def camera_report(self, cam: str, missing: bool) -> CameraReport:
        """What the camera's diagnostics status shows."""
        gate = self.gates[cam]
        return CameraReport(
            topic=self.image_topics.get(cam, f"{cam}/image_raw"),
            frames_received=self.frames_rx.get(cam, 0),
            anchored=self.processor.anchored(cam),
            size=format_size(gate.size) if gate.size is not None else "",
            size_changes=gate.size_changes,
            note=self.processor.notes.get(cam, ""),
            missing=missing,
        )

    # ------------------------------------------------------------------ callbacks
    def on_image(self, cam: str, msg: Image | CompressedImage) -> None:
        """A camera image: decoded, size-checked, handed to the synchroniser (or dropped and counted)."""
        now = time.monotonic()
        self.last_rx[cam] = now
        self.frames_rx[cam] = self.frames_rx.get(cam, 0) + 1
        if not self.active:
            return
        try:
            rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        except UnknownEncodingError as exc:
            self.drops.drop(cam, "unknown encoding", str(exc))
            return
        except DataError as exc:
            self.drops.drop(cam, "malformed image", str(exc))
            return
        mask = self.anchors.peek(cam)
        verdict = self.gates[cam].check(rgb.shape[:2], None if mask is None else mask.shape)
        if not verdict.accept:
            self.drops.drop(cam, verdict.reason, verdict.detail)
            return
        if verdict.changed_from is not None:
            self.processor.note(
                cam,
                f"size changed from {format_size(verdict.changed_from)} to {format_size(rgb.shape[:2])} "
                f"({self.gates[cam].change_after} frames in a row): its tracker restarts; publish a mask "
                f"of the new size on {cam}/masks_in",
            )
        self.worker.add(cam, stamp_to_ns(msg.header), Frame(msg.header, rgb, now, verdict.epoch))

    def on_camera_info(self, cam: str, msg: CameraInfo) -> None:
        """``<cam>/camera_info``: the camera's intrinsics for the cross-view rig (an uncalibrated
        one, all-zero ``k``, is dropped and counted)."""
        try:
            self.processor.link.rig.set_intrinsics(cam, list(msg.k), (int(msg.height), int(msg.width)))
        except DataError as exc:
            self.drops.drop(cam, "camera_info", str(exc))

    def on_depth(self, cam: str, msg: Image) -> None:
        """The anchor camera's depth image: kept for the anchor frame of its stamp (one of another
        encoding, malformed, or of another size than the camera's images is dropped and counted)."""
        if not self.active:
            return
        try:
            self.processor.link.put_depth(stamp_to_ns(msg.header), image_to_depth(msg), self.gates[cam].size)
        except DataError as exc:  # UnknownEncodingError and ShapeMismatchError included
            self.drops.drop(cam, "depth", str(exc))

    def on_pose(self, cam: str, msg: PoseStamped) -> None:
        """A moving camera's optical-frame pose in the rig's frame: kept for its frame of that
        stamp (one in another frame, or with an unset orientation, is dropped and counted)."""
        p, q = msg.pose.position, msg.pose.orientation
        try:
            T = pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), f"{cam}/pose")
            self.processor.link.put_pose(cam, stamp_to_ns(msg.header), T, msg.header.frame_id)
        except DataError as exc:
            self.drops.drop(cam, "pose", str(exc))

    def on_masks(self, cam: str, msg: Image) -> None:
        """A label image on ``<cam>/masks_in``: kept until the frame of its stamp."""
        try:
            labels = image_to_labels(msg)
        except UnknownEncodingError as exc:
            self.drops.drop(cam, "unknown mask encoding", str(exc))
            return
        except DataError as exc:
            self.drops.drop(cam, "malformed mask", str(exc))
            return
        if labels.size == 0:
            self.drops.drop(cam, "malformed mask", f"mask {format_size(labels.shape)} has no pixels")
            return
        reason = self.gates[cam].check_mask(labels.shape)
        if reason is not None:
            self.drops.drop(cam, "mask size mismatch", reason)
            return
        stamp = stamp_to_ns(msg.header)
        self.anchors.put(cam, stamp, labels)
        self.node.get_logger().info(
            f"camera '{cam}': mask {format_size(labels.shape)} with ids {format_ids(labels)} for stamp {stamp} ns"
        )

    # ------------------------------------------------------------------ worker thread
    def _on_worker_error(self, exc: BaseException) -> None:
        self.node.get_logger().error(f"processing a synchronised set failed: {type(exc).__name__}: {exc}")

    def _process_set(self, synced: SyncedSet[Frame]) -> None:
        alpha, overlay_on = self._overlay_settings()

        def overlay_for(cam: str) -> bool:
            return overlay_on and self._overlay_pubs[cam].get_subscription_count() > 0

        result = self.processor.process(synced, alpha, overlay_for)
        for cam, out in result.outputs.items():
            header = copy_header(out.header)
            self._label_pubs[cam].publish(labels_to_image(out.labels, header))
            if out.overlay is not None:
                self._overlay_pubs[cam].publish(rgb_to_image(out.overlay, header))
        self.timings.add(result.latency_s, result.processing_s)
        if result.summary["cameras"] and self._summary_pub.get_subscription_count() > 0:
            self._summary_pub.publish(String(data=json.dumps(result.summary)))
