"""``corr_node``'s drop counters and ``/diagnostics`` statuses.

Bad input never stops the node: it is dropped, counted per camera and reason by
:class:`DropCounter` (with a throttled warning), and reported by :func:`pipeline_status` (one
status for the node: state, rate, latency, drops, configure errors) and :func:`camera_status`
(one per camera: topic, frames, size, anchoring, drops, last event).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from corr_core.handoff import WorkerStats
from corr_core.runtime.drops import WARN_THROTTLE_S, DropCounter, Timings

__all__ = ["WARN_THROTTLE_S", "CameraReport", "DropCounter", "MissingCameras", "Timings", "backend_values",
           "camera_status", "gpu_memory_mb", "pipeline_status"]


@dataclass
class CameraReport:
    """What the node knows about one camera, for :func:`camera_status`.

    Attributes:
        topic: the image topic (resolved name).
        frames_received: images received since start.
        anchored: whether the camera's tracker holds a mask.
        size: ``"WxH"`` of the frames it tracks ("" before anchoring).
        size_changes: confirmed size changes (each restarts the tracker).
        note: the last event worth reading (e.g. a size change), "" if none.
        missing: no images for longer than ``camera_timeout``.
    """

    topic: str
    frames_received: int = 0
    anchored: bool = False
    size: str = ""
    size_changes: int = 0
    note: str = ""
    missing: bool = False


def _values(items: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=v) for k, v in items.items()]


def _ms(samples: list[float], how: str) -> str:
    if not samples:
        return "nan"
    value = max(samples) if how == "max" else sum(samples) / len(samples)
    return f"{1000 * value:.2f}"


def pipeline_status(
    name: str,
    hardware_id: str,
    lifecycle_state: str,
    cameras: list[str],
    rate_hz: float,
    timings: tuple[list[float], list[float]],
    stats: WorkerStats | None,
    drops: dict[tuple[str, str], int],
    missing: list[str],
    error: str | None,
    gpu_memory_mb: str | None = None,
    backend: dict[str, str] | None = None,
) -> DiagnosticStatus:
    """The node's status: ERROR when not configured because of ``error``, WARN while cameras are
    missing, OK otherwise; values: state, rate, latency, processing time, set and drop counts, and
    ``backend`` (``backend``, ``precision``, ``device``, ``backend_detail``: what runs the network)."""
    lat, proc = timings
    sync_dropped = sum((stats.messages_dropped or {}).values()) if stats else 0
    values = {
        "lifecycle_state": lifecycle_state,
        "cameras": ",".join(cameras),
        "rate_hz": f"{rate_hz:.3f}",
        "latency_ms": _ms(lat, "max"),
        "latency_mean_ms": _ms(lat, "mean"),
        "processing_ms": _ms(proc, "mean"),
        "sets_completed": str(stats.sets_completed if stats else 0),
        "sets_processed": str(stats.sets_processed if stats else 0),
        "dropped_sets": str(stats.sets_dropped if stats else 0),
        "dropped_messages": str(sum(drops.values()) + sync_dropped),
        "missing_cameras": ",".join(missing),
    }
    for reason in sorted({r for _, r in drops}):
        values[f"dropped/{reason}"] = str(sum(n for (_, r), n in drops.items() if r == reason))
    if sync_dropped:
        values["dropped/unmatched by sync"] = str(sync_dropped)
    if gpu_memory_mb is not None:
        values["gpu_memory_mb"] = gpu_memory_mb
    values.update(backend or {})
    status = DiagnosticStatus(name=f"{name}: pipeline", hardware_id=hardware_id)
    if error is not None:
        status.level, status.message = DiagnosticStatus.ERROR, f"not configured: {error}"
        values["error"] = error
    elif missing:
        status.level = DiagnosticStatus.WARN
        status.message = f"no images from camera(s) {missing}: no synchronised sets"
    elif lifecycle_state != "active":
        status.level, status.message = DiagnosticStatus.OK, f"{lifecycle_state} (not processing)"
    else:
        status.level, status.message = DiagnosticStatus.OK, "processing"
    status.values = _values(values)
    return status


def camera_status(
    name: str, camera: str, report: CameraReport, drops: dict[tuple[str, str], int], sync_dropped: int
) -> DiagnosticStatus:
    """One camera's status: WARN while it sends no images, OK otherwise ("tracking" or
    "waiting for a mask", with the last event when there is one)."""
    values = {
        "topic": report.topic,
        "frames_received": str(report.frames_received),
        "anchored": str(report.anchored).lower(),
        "size": report.size,
        "size_changes": str(report.size_changes),
        "last_event": report.note,
        "dropped/unmatched by sync": str(sync_dropped),
    }
    values.update({f"dropped/{r}": str(n) for (c, r), n in sorted(drops.items()) if c == camera})
    if report.missing:
        level, message = DiagnosticStatus.WARN, "no images (timeout)"
    else:
        level, message = DiagnosticStatus.OK, ("tracking" if report.anchored else "waiting for a mask")
        if report.note and not report.anchored:
            message += f" ({report.note})"
    return DiagnosticStatus(
        level=level, name=f"{name}: camera {camera}", message=message, hardware_id=camera, values=_values(values)
    )


def gpu_memory_mb(device: str) -> str:
    """Allocated CUDA memory of ``device`` in MiB ("n/a" without a CUDA runtime)."""
    import torch

    try:
        return f"{torch.cuda.memory_allocated(device) / 2**20:.1f}"
    except Exception:  # no CUDA runtime: report nothing rather than fail diagnostics
        return "n/a"


class MissingCameras:
    """Cameras without images: a throttled warning while they are missing, a line when they are back.

    Args:
        logger: has ``info``/``warning`` (an rclpy logger).
    """

    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._warned_at = -1e18
        self._since: dict[str, float] = {}  # camera -> when it was first reported missing

    def update(self, missing: list[str], cameras: list[str], topics: dict[str, str], timeout_s: float) -> None:
        """Called with every diagnostics message: ``missing`` cameras now, their ``topics``."""
        now = time.monotonic()
        for cam in sorted(self._since):
            if cam not in missing:
                gone = now - self._since.pop(cam)
                self._logger.info(f"camera '{cam}' is back: images again on {topics.get(cam, cam + '/image_raw')} "
                                  f"(reported missing for {gone:.1f} s); synchronised sets resume")
        for cam in missing:
            self._since.setdefault(cam, now)
        if not missing or now - self._warned_at < max(WARN_THROTTLE_S, timeout_s):
            return
        self._warned_at = now
        present = [c for c in cameras if c not in missing]
        self._logger.warning(
            "no images for "
            + ", ".join(f"camera '{c}' on {topics.get(c, c + '/image_raw')}" for c in missing)
            + f" for more than {timeout_s} s: no synchronised sets can be formed"
            + (f" (receiving from {present})" if present else "")
        )


def backend_values(info: Any, backend: str, precision: str) -> dict[str, str]:
    """``/diagnostics`` values of what runs the network: a
    :class:`~corr_core.runtime.backends.BackendInfo`, or (None) what is asked for, not loaded yet."""
    if info is None:
        return {"backend": f"{backend} (not loaded)", "precision": precision}
    values = {"backend": info.backend, "precision": info.precision, "device": info.device}
    values.update({f"backend_{k}": ",".join(v) if isinstance(v, list) else str(v) for k, v in info.detail.items()})
    return values
