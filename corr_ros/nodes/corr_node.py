"""``corr_node``: tracks masks through N synchronised cameras and publishes label images.

A lifecycle node (``rclpy.lifecycle.Node``):

* configure: validates the parameters, builds one :class:`~corr_core.propagation.tracker.Tracker`
  per camera, all on one network, through :func:`corr_core.api.build_camera_trackers` (checkpoint
  or random init, on the ``backend`` and ``precision`` asked for: torch, onnxruntime or tensorrt;
  an absent one fails the configure with its name, never falls back; what runs is logged and
  published in ``/diagnostics``), loads the optional ``initial_masks``, creates subscriptions and
  publishers;
* activate: starts the worker thread and processing; deactivate stops it once the set in
  progress is done (its labels are published first);
* cleanup: frees the trackers (and cached GPU memory).

With ``autostart: true`` (default) it configures and activates itself, so it runs without a
lifecycle manager. A failed configure (for example a missing checkpoint, an empty camera list, or
a parameter override that names no parameter of the node, such as ``-p camerass:=[head]``) is
logged with the reason, reported as ERROR on ``/diagnostics``, and leaves the node alive and
unconfigured.

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
throttled warning. A camera's frame size is fixed by the frame its tracker is anchored at, never by
a bad first frame; a lasting size change restarts that camera's tracker, which then waits for a
mask of the new size (:mod:`corr_ros.tracking.frames`).

The parts: :mod:`corr_ros.tracking.parameters` (the parameter table),
:mod:`corr_ros.tracking.processing` (one synchronised set -> labels),
:mod:`corr_ros.tracking.diagnostics` (drop counts and statuses).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.parameter import Parameter

from corr_core.errors import ConfigError, CorrError
from corr_core.options import propagation_settings
from corr_core.propagation.config import PropagationConfig
from corr_core.sync import MaskAnchors
from corr_ros.params import by_name, declare_all, value_of
from corr_ros.qos import qos_from_parameters
from corr_ros.tracking import diagnostics as diag
from corr_ros.tracking.crossview import build_link
from corr_ros.tracking.frames import SizeGate, format_size
from corr_ros.tracking.parameters import (
    LIVE_PROPAGATION_KEYS,
    PARAMS,
    PROPAGATION_KEYS,
    STRUCTURAL_PROPAGATION_KEYS,
)
from corr_ros.tracking.pipeline import CameraPipeline
from corr_ros.tracking.processing import SetProcessor, format_ids

NODE_NAME = "corr_node"
#: Seconds the process's exit waits for the set in progress (its context is gone: nothing is published).
EXIT_WAIT_S = 5.0
_T = Parameter.Type


class CorrNode(LifecycleNode):
    """The corr lifecycle node (see the module docstring for topics and behaviour)."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        """Declares the parameters and the diagnostics publisher (configure builds the rest).

        Args:
            args: the process's arguments (``sys.argv``), read for parameters given as an empty
                list, which rcl drops (None: not checked).
            **kwargs: passed to the rclpy node.
        """
        super().__init__(NODE_NAME, **kwargs)
        self._specs = by_name(PARAMS)
        self._startup_errors = declare_all(self, PARAMS, args)
        for err in self._startup_errors.values():
            self.get_logger().error(err)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        self._lc_state = "unconfigured"
        self._error: str | None = None
        self._drops = diag.DropCounter(self.get_logger())
        self._timings = diag.Timings()
        self._lock = threading.Lock()
        self._live = {s.name: value_of(self, s) for s in PARAMS if s.live}
        self._reset_runtime()

        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(
            float(value_of(self, self._specs["diagnostics_period"])), self._publish_diagnostics
        )
        self._last_diag = (time.monotonic(), 0)
        self._missing = diag.MissingCameras(self.get_logger())
        if self._startup_errors:  # reported at once, not only after autostart's configure
            self._error = "; ".join(self._startup_errors.values())

    # ------------------------------------------------------------------ state
    def _reset_runtime(self) -> None:
        self._cameras: list[str] = []
        self._pipeline: CameraPipeline | None = None
        self._device = "cpu"
        self._backend: Any = None  # corr_core.runtime.backends.BackendInfo once configured

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
            try:
                PropagationConfig().updated(**propagation_settings({**self._propagation(), **prop}))
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
        pipeline = self._pipeline
        if prop and pipeline is not None:
            pipeline.processor.update_config(**propagation_settings(prop))
        for param in params:
            if param.name == "slop" and pipeline is not None:
                pipeline.set_slop(float(param.value))
            elif param.name == "size_change_frames" and pipeline is not None:
                pipeline.set_size_change_frames(int(param.value))
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
            f"configured: cameras {self._cameras} on {self._device} ({self._backend.describe() if self._backend else ''}), "
            f"propagation {self._propagation()}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self._error = reason
        self.get_logger().error(f"configure failed: {reason}")
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> None:
        if self._startup_errors:  # overrides rejected at start (and not set correctly since)
            raise ConfigError("; ".join(self._startup_errors.values()))
        for spec in PARAMS:
            reason = spec.check(value_of(self, spec))
            if reason is not None:
                raise ConfigError(reason)
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
        anchors = MaskAnchors(float(self.get_parameter("slop").value))
        self._load_initial_masks(masks, anchors)
        change_after = int(self.get_parameter("size_change_frames").value)
        gates = {cam: SizeGate(change_after) for cam in self._cameras}
        trackers = self._build_trackers(checkpoint)
        link = build_link(lambda name: self.get_parameter(name).value, self._cameras, self._device, self.get_logger())
        processor = SetProcessor(trackers, anchors, gates, self._drops, self.get_logger(), link=link,
                                 batch=bool(self.get_parameter("batch_cameras").value))
        self._pipeline = CameraPipeline(
            self,
            processor,
            self._drops,
            self._timings,
            float(self.get_parameter("slop").value),
            int(self.get_parameter("queue_size").value),
            {role: qos_from_parameters(self, role) for role in ("input", "masks", "output")},
            self.get_parameter("transport").value == "compressed",
            self._overlay_settings,
            depth=link is not None and link.rig is not None and bool(self.get_parameter("crossview_depth").value),
        )
        self._drops.reset()
        self.destroy_timer(self._diag_timer)
        self._diag_timer = self.create_timer(
            float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics
        )

    def _overlay_settings(self) -> tuple[float, bool]:
        with self._lock:
            return float(self._live["overlay_alpha"]), bool(self._live["publish_overlay"])

    def _build_trackers(self, checkpoint: str) -> dict[str, Any]:
        """One tracker per camera; they share one network (loaded once, on the backend asked for)."""
        from corr_core.api import build_camera_trackers  # imports torch and the models
        from corr_core.runtime.backends import BackendInfo

        seed = None if checkpoint else int(self.get_parameter("seed").value)
        precision = self.get_parameter("precision").value
        trackers, meta = build_camera_trackers(
            self._cameras, checkpoint or None, self._propagation(), self._device, seed,
            self.get_parameter("backend").value, precision, log=self.get_logger().info,
        )
        self._backend = BackendInfo(meta["backend"], precision, str(self._device), meta.get("backend_detail", {}))
        model = next(iter(trackers.values())).model
        self.get_logger().info(
            f"feature network {type(model).__name__} from {checkpoint or 'random init'} on {self._device}: "
            f"backend {self._backend.describe()}"
        )
        return trackers

    def _load_initial_masks(self, paths: list[str], anchors: MaskAnchors) -> None:
        from corr_core.data.labels import read_label_png

        for cam, path in zip(self._cameras, paths or [""] * len(self._cameras), strict=True):
            if path:
                labels = read_label_png(path, require_palette=False)
                anchors.put(cam, 0, labels)
                self.get_logger().info(
                    f"camera '{cam}': initial mask {path} ({format_size(labels.shape)}) with ids {format_ids(labels)}"
                )

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        self._pipeline.start()
        self._lc_state = "active"
        self.get_logger().info(f"active: waiting for images on {list(self._pipeline.image_topics.values())}")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self._pipeline is not None and not self._pipeline.stop():
            self.get_logger().warning("deactivated while the worker was still processing a set")
        self._lc_state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._teardown(EXIT_WAIT_S)
        self._lc_state = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        self._teardown()
        self._lc_state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _teardown(self, wait_s: float | None = None) -> None:
        """Stops the worker, destroys topics and frees the trackers (safe to call repeatedly).

        Args:
            wait_s: longest wait for the set in progress (None: the pipeline's default, so its labels
                go out; the process's exit passes a few seconds: nothing can be published then).
        """
        if self._pipeline is not None:
            self._pipeline.destroy(wait_s)
        device = self._device
        self._reset_runtime()
        if str(device).startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    # ------------------------------------------------------------------ diagnostics
    def _backend_values(self) -> dict[str, str]:
        """What runs the network, for ``/diagnostics`` (what is asked for until configured)."""
        asked = (str(self.get_parameter("backend").value), str(self.get_parameter("precision").value))
        return diag.backend_values(self._backend, *asked)

    def _publish_diagnostics(self) -> None:
        pipeline = self._pipeline
        missing = pipeline.missing_cameras(float(self._live["camera_timeout"])) if pipeline else []
        topics = pipeline.image_topics if pipeline else {}
        self._missing.update(missing, self._cameras, topics, float(self._live["camera_timeout"]))
        stats = pipeline.stats() if pipeline else None
        now = time.monotonic()
        processed = stats.sets_processed if stats else 0
        t_prev, n_prev = self._last_diag
        self._last_diag = (now, processed)
        drops = self._drops.counts()
        gpu = diag.gpu_memory_mb(self._device) if str(self._device).startswith("cuda") and pipeline else None
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [
            diag.pipeline_status(
                self.get_name(),
                self.get_fully_qualified_name(),
                self._lc_state,
                self._cameras,
                max(0, processed - n_prev) / max(now - t_prev, 1e-6),
                self._timings.take(),
                stats,
                drops,
                missing,
                self._error,
                gpu,
                self._backend_values(),
            )
        ]
        for cam in self._cameras if pipeline else []:
            sync_dropped = (stats.messages_dropped or {}).get(cam, 0)
            report = pipeline.camera_report(cam, cam in missing)
            msg.status.append(diag.camera_status(self.get_name(), cam, report, drops, sync_dropped))
        self._diag_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Runs ``corr_node`` until SIGINT/SIGTERM."""
    rclpy.init(args=args)
    node: CorrNode | None = None
    try:
        node = CorrNode(args=sys.argv if args is None else args)
        node.autostart()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._teardown(EXIT_WAIT_S)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))


__all__ = ["CorrNode", "PARAMS", "PROPAGATION_KEYS", "main"]
