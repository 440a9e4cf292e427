"""``corr_node``: tracks masks through N synchronised cameras and publishes label images.

A lifecycle node (``rclpy.lifecycle.Node``):

* configure: validates the parameters, builds one :class:`~corr_core.propagation.tracker.Tracker`
  per camera through :func:`corr_core.api.build_tracker` (checkpoint or random init), loads the
  optional ``initial_masks``, creates subscriptions and publishers;
* activate: starts the worker thread and processing; deactivate stops it;
* cleanup: frees the trackers (and cached GPU memory).

With ``autostart: true`` (default) it configures and activates itself, so it runs without a
lifecycle manager. A failed configure (for example a missing checkpoint) is logged with the
reason, reported as ERROR on ``/diagnostics``, and leaves the node alive and unconfigured.

Topics (relative; namespace and remap them from the launch file), per camera ``<cam>``:

* in ``<cam>/image_raw`` (sensor_msgs/Image, sensor-data QoS; with ``transport: compressed``
  ``<cam>/image_raw/compressed``, sensor_msgs/CompressedImage),
  ``<cam>/masks_in`` (mono8/mono16 label image, reliable): a mask anchors (or re-anchors) the
  track at the first processed frame whose stamp is not older than the mask's;
* out ``<cam>/labels`` (mono16, object ids as given in the masks, shared across cameras and
  time), ``<cam>/overlay`` (rgb8, only while someone subscribes), ``corr/summary``
  (std_msgs/String JSON: per-camera object ids and areas) and ``/diagnostics``.

Output headers are the input image headers (stamp and frame id). Bad input never stops the node:
it is dropped, counted per camera and reason (reported in diagnostics), and logged with a
throttled warning.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from corr_core.errors import ConfigError, CorrError, DataError, UnknownEncodingError
from corr_core.handoff import NewestSetWorker
from corr_core.propagation.crw import PropagationConfig
from corr_core.sync import MaskAnchors, SyncedSet
from corr_core.viz import overlay
from corr_ros.conversions import (
    compressed_to_rgb,
    copy_header,
    image_to_labels,
    image_to_rgb,
    labels_to_image,
    rgb_to_image,
    stamp_to_ns,
)
from corr_ros.params import ParamSpec, by_name, declare_all, value_of
from corr_ros.qos import qos_from_parameters, qos_param_specs

NODE_NAME = "corr_node"
_T = Parameter.Type
_PROP = PropagationConfig()
#: Structural propagation settings (they size or shape the trackers' memory).
STRUCTURAL_PROPAGATION_KEYS = ("context", "long_term_every", "long_term_size", "long_term_radius",
                               "input_scale")
#: Propagation settings that change live (context sizes the trackers' memory: structural).
LIVE_PROPAGATION_KEYS = ("topk", "radius", "temperature")
PROPAGATION_KEYS = LIVE_PROPAGATION_KEYS + STRUCTURAL_PROPAGATION_KEYS

def propagation_settings(params: dict[str, Any]) -> dict[str, Any]:
    """:class:`PropagationConfig` fields from the node's parameters of those names: a
    ``long_term_radius`` of 0 (ROS parameters have no infinity) means the whole image."""
    out = dict(params)
    if "long_term_radius" in out:
        out["long_term_radius"] = float(out["long_term_radius"]) or math.inf
    return out


#: Every parameter of corr_node (the YAML files and the launch file must use only these).
PARAMS: list[ParamSpec] = [
    ParamSpec(
        "autostart",
        _T.BOOL,
        True,
        "configure and activate on start (runs without a lifecycle manager)",
        live=True,
    ),
    ParamSpec(
        "cameras",
        _T.STRING_ARRAY,
        ["ego", "exo1"],
        "camera names; each subscribes <cam>/image_raw and <cam>/masks_in, publishes <cam>/labels and <cam>/overlay",
        min_items=1,
        topic_tokens=True,
    ),
    ParamSpec(
        "checkpoint",
        _T.STRING,
        "",
        "corr checkpoint path (.safetensors with its .json, or .onnx from `corr export onnx`: runs on "
        "onnxruntime); '' needs random_init",
    ),
    ParamSpec(
        "random_init",
        _T.BOOL,
        False,
        "with checkpoint '': use a randomly initialised network (tests, baselines)",
    ),
    ParamSpec("seed", _T.INTEGER, 0, "seed of the random initialisation", range=(0, 2**31 - 1)),
    ParamSpec(
        "device",
        _T.STRING,
        "cpu",
        "torch device of the model",
        choices=("cpu", "cuda"),
        choice_pattern=r"cuda:\d+",
    ),
    ParamSpec(
        "slop",
        _T.DOUBLE,
        0.05,
        "approximate-sync slop in seconds (largest stamp spread in a set)",
        live=True,
        range=(0.0, 10.0),
    ),
    ParamSpec(
        "queue_size", _T.INTEGER, 5, "pending images kept per camera by the synchroniser", range=(1, 100)
    ),
    ParamSpec(
        "transport",
        _T.STRING,
        "raw",
        "camera input: 'raw' (<cam>/image_raw, sensor_msgs/Image) or 'compressed' (<cam>/image_raw/compressed)",
        choices=("raw", "compressed"),
    ),
    ParamSpec(
        "topk",
        _T.INTEGER,
        _PROP.topk,
        "label propagation: context positions kept per target position",
        live=True,
        range=(1, 100000),
    ),
    ParamSpec(
        "context",
        _T.INTEGER,
        _PROP.context,
        "label propagation: preceding frames in the context (sizes the memory)",
        range=(0, 1000),
    ),
    ParamSpec(
        "radius",
        _T.DOUBLE,
        float(_PROP.radius),
        "label propagation: spatial radius in feature cells (> 0)",
        live=True,
        range=(0.0, 1.0e6),
    ),
    ParamSpec(
        "temperature",
        _T.DOUBLE,
        _PROP.temperature,
        "label propagation: softmax temperature (> 0)",
        live=True,
        range=(0.0, 100.0),
    ),
    ParamSpec(
        "long_term_every",
        _T.INTEGER,
        _PROP.long_term_every,
        "long-term memory (MER/MAST): every n-th frame after the annotated one joins it (0: only the "
        "annotated frame, the CRW protocol)",
        range=(0, 100000),
    ),
    ParamSpec(
        "long_term_size",
        _T.INTEGER,
        _PROP.long_term_size,
        "long-term memory: most frames kept, the annotated one included (sizes the memory)",
        range=(1, 1000),
    ),
    ParamSpec(
        "long_term_radius",
        _T.DOUBLE,
        0.0,
        "long-term memory: radius in feature cells within which its frames are matched (0: whole image)",
        range=(0.0, 1.0e6),
    ),
    ParamSpec(
        "input_scale",
        _T.DOUBLE,
        float(_PROP.input_scale),
        "frames are resized by this factor before the network (sizes the memory); 2 tracks small "
        "objects much better at about 4x the compute; labels keep the camera's size",
        range=(0.125, 8.0),
    ),
    ParamSpec(
        "initial_masks",
        _T.STRING_ARRAY,
        [],
        "label PNG per camera (same order as cameras; '' for none) used for the first frame",
    ),
    ParamSpec(
        "overlay_alpha",
        _T.DOUBLE,
        0.5,
        "opacity of the object colours in <cam>/overlay",
        live=True,
        range=(0.0, 1.0),
    ),
    ParamSpec(
        "publish_overlay", _T.BOOL, True, "publish <cam>/overlay (only while someone subscribes)", live=True
    ),
    ParamSpec(
        "camera_timeout",
        _T.DOUBLE,
        5.0,
        "warn when a camera sent no image for this many seconds (0 disables)",
        live=True,
        range=(0.0, 3600.0),
    ),
    ParamSpec(
        "diagnostics_period", _T.DOUBLE, 1.0, "seconds between /diagnostics messages", range=(0.05, 60.0)
    ),
    *qos_param_specs(("input", "masks", "output")),
]

WARN_THROTTLE_S = 5.0


@dataclass
class _Frame:
    header: Header
    rgb: np.ndarray
    received_s: float


class DropCounter:
    """Counts dropped messages per (camera, reason) and logs a throttled warning per pair."""

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
        with self._lock:
            self._counts.clear()
            self._last_log.clear()


class CorrNode(LifecycleNode):
    """The corr lifecycle node (see the module docstring for topics and behaviour)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._specs = by_name(PARAMS)
        self._startup_errors = declare_all(self, PARAMS)
        for err in self._startup_errors.values():
            self.get_logger().error(err)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        self._lc_state = "unconfigured"
        self._error: str | None = None
        self._drops = DropCounter(self.get_logger())
        self._lock = threading.Lock()
        self._live = {s.name: value_of(self, s) for s in PARAMS if s.live}
        self._pending_propagation: dict[str, Any] | None = None
        self._reset_runtime()

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            float(value_of(self, self._specs["diagnostics_period"])), self._publish_diagnostics
        )
        self._last_diag = (time.monotonic(), 0)
        self._missing_warned_at = -1e18

    # ------------------------------------------------------------------ state
    def _reset_runtime(self) -> None:
        self._cameras: list[str] = []
        self._trackers: dict[str, Any] = {}
        self._anchored: dict[str, bool] = {}
        self._frame_size: dict[str, tuple[int, int]] = {}
        self._last_rx: dict[str, float] = {}
        self._frames_rx: dict[str, int] = {}
        self._worker: NewestSetWorker[_Frame] | None = None
        self._anchors = MaskAnchors(0.0)
        self._subs: list[Any] = []
        self._label_pubs: dict[str, Any] = {}
        self._overlay_pubs: dict[str, Any] = {}
        self._summary_pub: Any = None
        self._image_topics: dict[str, str] = {}
        self._active = False
        self._activated_at = time.monotonic()
        self._latency_s: list[float] = []
        self._processing_s: list[float] = []
        self._device = "cpu"

    @property
    def lifecycle_state(self) -> str:
        """``unconfigured``, ``inactive``, ``active`` or ``finalized``."""
        return self._lc_state

    @property
    def last_error(self) -> str | None:
        """Why the last configure failed (None after a successful one)."""
        return self._error

    def autostart(self) -> None:
        """Configures and activates the node if the ``autostart`` parameter is true."""
        if not self.get_parameter("autostart").value:
            self.get_logger().info("autostart is false: waiting for lifecycle transitions")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error(
                f"autostart: configure failed ({self._error}); the node stays unconfigured. Fix the "
                "parameters, then trigger 'configure' and 'activate' through the lifecycle services."
            )
            return
        self.trigger_activate()

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        prop: dict[str, Any] = {}
        for param in params:
            spec = self._specs.get(param.name)
            if spec is None:
                continue
            value = list(param.value or []) if spec.type == _T.STRING_ARRAY else param.value
            reason = spec.check(value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
            if not spec.live and self._lc_state in ("inactive", "active"):
                return SetParametersResult(
                    successful=False,
                    reason=(
                        f"parameter '{param.name}' is structural: change it while the node is unconfigured "
                        "(deactivate, cleanup, set it, then configure again)"
                    ),
                )
            if param.name in PROPAGATION_KEYS:
                prop[param.name] = value
        if prop:
            merged = self._propagation()
            merged.update(prop)
            try:
                PropagationConfig(**propagation_settings(merged))
            except ConfigError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Parameter]) -> None:
        prop: dict[str, Any] = {}
        for param in params:
            self._startup_errors.pop(param.name, None)
        with self._lock:
            for param in params:
                spec = self._specs.get(param.name)
                if spec is None or not spec.live:
                    continue
                self._live[param.name] = float(param.value) if spec.type == _T.DOUBLE else param.value
                if param.name in LIVE_PROPAGATION_KEYS:
                    prop[param.name] = self._live[param.name]
            if prop:
                self._pending_propagation = {**(self._pending_propagation or {}), **prop}
        for param in params:
            if param.name == "slop":
                if self._worker is not None:
                    self._worker.set_slop(float(param.value))
                self._anchors.slop_ns = int(round(float(param.value) * 1e9))
        if params:
            self.get_logger().info("parameters changed: " + ", ".join(f"{p.name}={p.value}" for p in params))

    def _propagation(self) -> dict[str, Any]:
        values = {k: self._live[k] for k in LIVE_PROPAGATION_KEYS}
        for key in STRUCTURAL_PROPAGATION_KEYS:
            values[key] = self.get_parameter(key).value
        return propagation_settings(values)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._configure()
        except CorrError as exc:
            return self._configure_failed(str(exc))
        except Exception as exc:  # anything else must not take the node down either
            return self._configure_failed(f"{type(exc).__name__}: {exc}")
        self._error = None
        self._lc_state = "inactive"
        self.get_logger().info(
            f"configured: cameras {self._cameras} on {self._device}, propagation {self._propagation()}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self._error = reason
        self.get_logger().error(f"configure failed: {reason}")
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> None:
        for spec in PARAMS:
            reason = spec.check(value_of(self, spec))
            if reason is not None:
                raise ConfigError(reason)
        if self._startup_errors:  # overrides rejected at start and not set correctly since
            raise ConfigError("; ".join(self._startup_errors.values()))
        cameras = value_of(self, self._specs["cameras"])
        masks = value_of(self, self._specs["initial_masks"])
        if masks and len(masks) != len(cameras):
            raise ConfigError(
                f"parameter 'initial_masks' has {len(masks)} entries for {len(cameras)} cameras {cameras}; "
                "give one PNG path per camera ('' for none)"
            )
        checkpoint = self.get_parameter("checkpoint").value
        if not checkpoint and not self.get_parameter("random_init").value:
            raise ConfigError(
                "parameter 'checkpoint' is empty: give a checkpoint path, or set random_init: true "
                "(random features, for tests only)"
            )
        self._reset_runtime()
        self._cameras = list(cameras)
        self._device = self.get_parameter("device").value
        slop = float(self.get_parameter("slop").value)
        self._anchors = MaskAnchors(slop)
        self._load_initial_masks(masks)
        self._build_trackers(checkpoint)
        self._worker = NewestSetWorker(
            self._cameras,
            slop,
            int(self.get_parameter("queue_size").value),
            self._process_set,
            on_error=self._on_worker_error,
            name="corr_worker",
        )
        self._create_topics()
        self._drops.reset()
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(
            float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics
        )

    def _build_trackers(self, checkpoint: str) -> None:
        """One tracker per camera; they share the first tracker's network (loaded once)."""
        from corr_core.api import build_tracker  # imports torch and the models

        seed = None if checkpoint else int(self.get_parameter("seed").value)
        first = build_tracker(
            checkpoint or None, self._propagation(), device=self._device, random_init_seed=seed
        )
        self.get_logger().info(
            f"feature network {type(first.model).__name__} from {checkpoint or 'random init'} on {self._device}"
        )
        for i, cam in enumerate(self._cameras):
            tracker = (
                first if i == 0 else type(first)(first.model, first.cfg, self._device)
            )
            self._trackers[cam] = tracker
            self._anchored[cam] = False

    def _load_initial_masks(self, paths: list[str]) -> None:
        from corr_core.data.labels import read_label_png

        for cam, path in zip(self._cameras, paths or [""] * len(self._cameras), strict=True):
            if path:
                labels = read_label_png(path, require_palette=False)
                self._anchors.put(cam, 0, labels)
                self.get_logger().info(f"camera '{cam}': initial mask {path} with ids {_ids(labels)}")

    def _create_topics(self) -> None:
        in_qos = qos_from_parameters(self, "input")
        mask_qos = qos_from_parameters(self, "masks")
        out_qos = qos_from_parameters(self, "output")
        # masks_in first: when a mask and an image are ready in the same executor wake-up, the
        # executor serves subscriptions in creation order, so the mask is stored before the image.
        for cam in self._cameras:
            self._subs.append(
                self.create_subscription(
                    Image, f"{cam}/masks_in", lambda msg, cam=cam: self._on_masks(cam, msg), mask_qos
                )
            )
        compressed = self.get_parameter("transport").value == "compressed"
        for cam in self._cameras:
            sub = self.create_subscription(
                CompressedImage if compressed else Image,
                f"{cam}/image_raw/compressed" if compressed else f"{cam}/image_raw",
                lambda msg, cam=cam: self._on_image(cam, msg),
                in_qos,
            )
            self._image_topics[cam] = sub.topic_name
            self._subs.append(sub)
            self._label_pubs[cam] = self.create_lifecycle_publisher(Image, f"{cam}/labels", out_qos)
            self._overlay_pubs[cam] = self.create_lifecycle_publisher(Image, f"{cam}/overlay", out_qos)
        self._summary_pub = self.create_lifecycle_publisher(String, "corr/summary", out_qos)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self._activated_at = time.monotonic()
        self._last_rx = {}
        self._worker.start()
        self._active = True
        self._lc_state = "active"
        self.get_logger().info(f"active: waiting for images on {list(self._image_topics.values())}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self._worker is not None and not self._worker.stop():
            self.get_logger().warning("the worker did not stop within 5 s")
        self._lc_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self._lc_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self) -> None:
        """Stops the worker, destroys topics and frees the trackers (safe to call repeatedly)."""
        self._active = False
        if self._worker is not None:
            self._worker.stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        for pub in [*self._label_pubs.values(), *self._overlay_pubs.values(), self._summary_pub]:
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        device = self._device
        self._reset_runtime()
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ input callbacks
    def _on_image(self, cam: str, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        self._last_rx[cam] = now
        self._frames_rx[cam] = self._frames_rx.get(cam, 0) + 1
        if not self._active or self._worker is None:
            return
        try:
            rgb = compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)
        except UnknownEncodingError as exc:
            self._drops.drop(cam, "unknown encoding", str(exc))
            return
        except DataError as exc:
            self._drops.drop(cam, "malformed image", str(exc))
            return
        size = rgb.shape[:2]
        first = self._frame_size.setdefault(cam, size)
        if size != first:
            self._drops.drop(
                cam,
                "size mismatch",
                f"image {size[1]}x{size[0]} differs from the camera's first frame {first[1]}x{first[0]}",
            )
            return
        self._worker.add(cam, stamp_to_ns(msg.header), _Frame(msg.header, rgb, now))

    def _on_masks(self, cam: str, msg: Image) -> None:
        if self._worker is None:
            return
        try:
            labels = image_to_labels(msg)
        except UnknownEncodingError as exc:
            self._drops.drop(cam, "unknown mask encoding", str(exc))
            return
        except DataError as exc:
            self._drops.drop(cam, "malformed mask", str(exc))
            return
        size = self._frame_size.get(cam)
        if size is not None and labels.shape != size:
            self._drops.drop(
                cam,
                "mask size mismatch",
                f"mask {labels.shape[1]}x{labels.shape[0]} differs from the camera's frames {size[1]}x{size[0]}",
            )
            return
        stamp = stamp_to_ns(msg.header)
        self._anchors.put(cam, stamp, labels)
        self.get_logger().info(f"camera '{cam}': mask with ids {_ids(labels)} for stamp {stamp} ns")

    # ------------------------------------------------------------------ worker
    def _on_worker_error(self, exc: BaseException) -> None:
        self.get_logger().error(f"processing a synchronised set failed: {type(exc).__name__}: {exc}")

    def _apply_pending_propagation(self) -> None:
        with self._lock:
            changes, self._pending_propagation = self._pending_propagation, None
        if not changes:
            return
        for tracker in self._trackers.values():
            tracker.update_config(**changes)
        self.get_logger().info(f"propagation settings now {self._propagation()}")

    def _process_set(self, synced: SyncedSet[_Frame]) -> None:
        self._apply_pending_propagation()
        with self._lock:
            alpha = float(self._live["overlay_alpha"])
            overlay_on = bool(self._live["publish_overlay"])
        summary: dict[str, Any] = {"stamp_ns": int(synced.stamp_ns), "cameras": {}, "skipped": {}}
        started = time.perf_counter()
        for cam in self._cameras:
            frame = synced.items[cam]
            stamp = synced.stamps_ns[cam]
            masks = self._anchors.take(cam, stamp)
            if masks is not None and masks.shape != frame.rgb.shape[:2]:
                h, w = frame.rgb.shape[:2]
                self._drops.drop(
                    cam, "mask size mismatch", f"mask {masks.shape[1]}x{masks.shape[0]} vs frame {w}x{h}"
                )
                masks = None
            if masks is None and not self._anchored[cam]:
                self._drops.drop(
                    cam, "no initial mask yet", f"frame at {stamp} ns; publish one on {cam}/masks_in"
                )
                summary["skipped"][cam] = "no initial mask yet"
                continue
            try:
                labels = self._trackers[cam].step(frame.rgb, masks)
            except Exception as exc:  # one bad frame must not stop the other cameras
                self._drops.drop(cam, "tracker error", f"{type(exc).__name__}: {exc}")
                summary["skipped"][cam] = "tracker error"
                continue
            self._anchored[cam] = True
            header = copy_header(frame.header)
            self._label_pubs[cam].publish(labels_to_image(labels, header))
            if overlay_on and self._overlay_pubs[cam].get_subscription_count() > 0:
                self._overlay_pubs[cam].publish(rgb_to_image(overlay(frame.rgb, labels, alpha), header))
            summary["cameras"][cam] = {
                "frame_id": frame.header.frame_id,
                "stamp_ns": int(stamp),
                "reanchored": masks is not None,
                "objects": _objects(labels),
            }
        done = time.monotonic()
        with self._lock:
            self._processing_s.append(time.perf_counter() - started)
            self._latency_s.append(done - max(f.received_s for f in synced.items.values()))
        if summary["cameras"] and self._summary_pub.get_subscription_count() > 0:
            self._summary_pub.publish(String(data=json.dumps(summary)))

    # ------------------------------------------------------------------ diagnostics
    def _missing_cameras(self) -> list[str]:
        timeout = float(self._live["camera_timeout"])
        if not self._active or timeout <= 0:
            return []
        now = time.monotonic()
        return [c for c in self._cameras if now - self._last_rx.get(c, self._activated_at) > timeout]

    def _publish_diagnostics(self) -> None:
        missing = self._missing_cameras()
        if missing:
            now = time.monotonic()
            if now - self._missing_warned_at >= max(WARN_THROTTLE_S, float(self._live["camera_timeout"])):
                self._missing_warned_at = now
                present = [c for c in self._cameras if c not in missing]
                self.get_logger().warning(
                    "no images for "
                    + ", ".join(
                        f"camera '{c}' on {self._image_topics.get(c, c + '/image_raw')}" for c in missing
                    )
                    + f" for more than {self._live['camera_timeout']} s: no synchronised sets can be formed"
                    + (f" (receiving from {present})" if present else "")
                )
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [self._pipeline_status(missing)] + [
            self._camera_status(c, c in missing) for c in self._cameras
        ]
        self._diag_pub.publish(msg)

    def _pipeline_status(self, missing: list[str]) -> DiagnosticStatus:
        stats = self._worker.stats() if self._worker is not None else None
        with self._lock:
            lat, proc = self._latency_s, self._processing_s
            self._latency_s, self._processing_s = [], []
        now = time.monotonic()
        processed = stats.sets_processed if stats else 0
        t_prev, n_prev = self._last_diag
        rate = max(0, processed - n_prev) / max(now - t_prev, 1e-6)
        self._last_diag = (now, processed)
        drops = self._drops.counts()
        values = {
            "lifecycle_state": self._lc_state,
            "cameras": ",".join(self._cameras),
            "rate_hz": f"{rate:.3f}",
            "latency_ms": f"{1000 * max(lat):.2f}" if lat else "nan",
            "latency_mean_ms": f"{1000 * sum(lat) / len(lat):.2f}" if lat else "nan",
            "processing_ms": f"{1000 * sum(proc) / len(proc):.2f}" if proc else "nan",
            "sets_completed": str(stats.sets_completed if stats else 0),
            "sets_processed": str(processed),
            "dropped_sets": str(stats.sets_dropped if stats else 0),
            "dropped_messages": str(
                sum(drops.values()) + sum((stats.messages_dropped or {}).values() if stats else [])
            ),
            "missing_cameras": ",".join(missing),
        }
        for reason in sorted({r for _, r in drops}):
            values[f"dropped/{reason}"] = str(sum(n for (_, r), n in drops.items() if r == reason))
        if stats and stats.messages_dropped:
            values["dropped/unmatched by sync"] = str(sum(stats.messages_dropped.values()))
        if str(self._device).startswith("cuda") and self._trackers:
            values["gpu_memory_mb"] = _gpu_memory_mb(self._device)
        status = DiagnosticStatus(
            name=f"{self.get_name()}: pipeline", hardware_id=self.get_fully_qualified_name()
        )
        if self._error is not None:
            status.level, status.message = DiagnosticStatus.ERROR, f"not configured: {self._error}"
            values["error"] = self._error
        elif missing:
            status.level = DiagnosticStatus.WARN
            status.message = f"no images from camera(s) {missing}: no synchronised sets"
        elif self._lc_state != "active":
            status.level, status.message = DiagnosticStatus.OK, f"{self._lc_state} (not processing)"
        else:
            status.level, status.message = DiagnosticStatus.OK, "processing"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        return status

    def _camera_status(self, cam: str, missing: bool) -> DiagnosticStatus:
        drops = {r: n for (c, r), n in self._drops.counts().items() if c == cam}
        stats = self._worker.stats() if self._worker is not None else None
        sync_dropped = (stats.messages_dropped or {}).get(cam, 0) if stats else 0
        values = {
            "topic": self._image_topics.get(cam, f"{cam}/image_raw"),
            "frames_received": str(self._frames_rx.get(cam, 0)),
            "anchored": str(self._anchored.get(cam, False)).lower(),
            "size": "x".join(map(str, self._frame_size[cam][::-1])) if cam in self._frame_size else "",
            "dropped/unmatched by sync": str(sync_dropped),
        }
        values.update({f"dropped/{r}": str(n) for r, n in sorted(drops.items())})
        level = DiagnosticStatus.WARN if missing else DiagnosticStatus.OK
        message = (
            "no images (timeout)"
            if missing
            else ("tracking" if self._anchored.get(cam) else "waiting for a mask")
        )
        return DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: camera {cam}",
            message=message,
            hardware_id=cam,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )


def _ids(labels: np.ndarray) -> list[int]:
    return [int(i) for i in np.unique(labels) if i != 0]


def _objects(labels: np.ndarray) -> list[dict[str, int]]:
    ids, counts = np.unique(labels, return_counts=True)
    return [{"id": int(i), "area": int(n)} for i, n in zip(ids, counts, strict=True) if i != 0]


def _gpu_memory_mb(device: str) -> str:
    import torch

    try:
        return f"{torch.cuda.memory_allocated(device) / 2**20:.1f}"
    except Exception:  # no CUDA runtime: report nothing rather than fail diagnostics
        return "n/a"


def main(args: list[str] | None = None) -> int:
    """Runs ``corr_node`` until SIGINT/SIGTERM."""
    rclpy.init(args=args)
    node: CorrNode | None = None
    try:
        node = CorrNode()
        node.autostart()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._teardown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


__all__ = ["CorrNode", "PARAMS", "PROPAGATION_KEYS", "main"]
