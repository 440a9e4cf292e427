"""Driving a ``corr_node`` process with camera images at a fixed rate, and measuring it.

The machinery of ``corr bench node`` and of the soak test: :func:`run_load` starts ``corr_node``
in its own process (:mod:`corr_ros.launcher`), publishes synthetic camera images (textured scenes
with moving objects, anchored by ``initial_masks``) on every ``<cam>/image_raw`` over real ROS 2
topics at ``rate_hz``, each set stamped with the wall-clock time it is published, and collects:

* per set, the labels of every camera: a set is *processed* when the labels of all its cameras
  came back; latency = the last camera's labels received minus the set's stamp (camera stamp ->
  labels received, one host clock);
* *published - processed* = the sets the node dropped (its depth-1 hand-off keeps the newest);
* the node's own counters from ``/diagnostics`` (sets completed, processed, dropped; the backend);
* the node process's CPU time and resident memory, sampled from ``/proc`` (Linux).

Only the measurement window (after ``warmup_s``) counts toward throughput and latency; memory is
sampled over the whole run (the soak's curve). Nothing here asserts anything: the soak test and
the benchmark decide what the figures must be.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from corr_ros.launcher import RosProcess, wait_until

__all__ = ["RELIABLE_DEPTH", "LoadResult", "LoadSpec", "ProcStats", "camera_names", "run_load", "synthetic_scene"]

#: History depth of reliable camera topics (both sides): seconds of images a starved node can catch up on.
RELIABLE_DEPTH = 100


def camera_names(count: int) -> list[str]:
    """``["ego", "exo1", "exo2", ...]``."""
    return ["ego"] + [f"exo{i}" for i in range(1, count)]


def synthetic_scene(index: int, size: tuple[int, int], frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``frames`` RGB frames of a textured scene with two objects moving right, and the first frame's
    labels (ids 1 and 2); camera ``index`` gets its own texture and colours."""
    h, w = size
    rng = np.random.default_rng(index)
    background = rng.integers(70, 150, (h, w, 3)).astype(np.uint8)
    boxes = [(0.15, 0.55, 0.10, 0.35, 1, (220, 50, 40)), (0.45, 0.90, 0.50, 0.80, 2, (40, 70, 225))]
    out, labels = [], np.zeros((h, w), np.uint8)
    for f in range(frames):
        image = background.copy()
        shift = int(round(0.1 * w * f / max(1, frames)))
        for y0, y1, x0, x1, obj, colour in boxes:
            ys = slice(int(y0 * h), int(y1 * h))
            xs = slice(min(w - 1, int(x0 * w) + shift), min(w, int(x1 * w) + shift))
            image[ys, xs] = colour
            if f == 0:
                labels[ys, xs] = obj
        out.append(image)
    return out, labels


class ProcStats:
    """CPU time and resident memory of a process, from ``/proc/<pid>`` (Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float:
        """User + system CPU seconds so far (0 once the process is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self._tick

    def rss_mib(self) -> float:
        """Resident memory in MiB (0 once the process is gone)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return 0.0


@dataclass
class LoadSpec:
    """One run of :func:`run_load`.

    Attributes:
        cameras: number of cameras (``ego``, ``exo1``, ...).
        size: ``(H, W)`` of the images.
        rate_hz: sets published per second (every camera at this rate).
        duration_s: measurement window, after ``warmup_s``.
        warmup_s: published but not measured (the network's first calls, anchoring).
        backend, precision: the node's ``backend`` and ``precision``.
        checkpoint: the node's ``checkpoint`` ('' with ``random_init_seed``).
        random_init_seed: the node's ``seed`` with ``random_init: true``.
        params: further ``corr_node`` parameters (``{"context": 5, "batch_cameras": False}``).
        reliable_input: reliable camera subscriptions (nothing lost in transport: every published set
            reaches the node, so its counters can be checked against what was published).
        sample_period_s: seconds between ``/proc`` samples.
        startup_s: longest wait for the node to come up.
        drain_s: longest wait for the node to finish after the last set.
    """

    cameras: int = 2
    size: tuple[int, int] = (240, 320)
    rate_hz: float = 30.0
    duration_s: float = 10.0
    warmup_s: float = 3.0
    backend: str = "auto"
    precision: str = "fp32"
    checkpoint: str = ""
    random_init_seed: int | None = 0
    params: dict[str, Any] = field(default_factory=dict)
    reliable_input: bool = False
    sample_period_s: float = 0.5
    startup_s: float = 180.0
    drain_s: float = 60.0


@dataclass
class LoadResult:
    """What :func:`run_load` measured (window figures cover the measurement window only).

    Attributes:
        published: sets published in the window; processed: those whose labels came back for every
            camera; dropped: published - processed.
        throughput_hz: processed sets per second of the window.
        latency_ms: ``{"p50", "p95", "p99", "max", "mean"}`` of processed sets in the window.
        cpu_percent: node CPU time over the window, in % of one core.
        rss_mib: ``{"start", "end", "max", "growth"}`` over the window (growth: median of its last
            quarter minus median of its first quarter).
        memory: ``[(seconds since the node started, RSS MiB)]`` over the whole run.
        total_published: sets published in the whole run (warm-up included).
        labels_received: camera -> label messages received in the whole run.
        node: the node's last ``/diagnostics`` pipeline values after draining (its counters:
            ``sets_completed``, ``sets_processed``, ``dropped_sets``, ``backend``, ...).
        publish_late: publications more than one period behind schedule (the driver could not keep
            the rate).
    """

    spec: dict[str, Any]
    published: int = 0
    processed: int = 0
    dropped: int = 0
    throughput_hz: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    cpu_percent: float = 0.0
    rss_mib: dict[str, float] = field(default_factory=dict)
    memory: list[tuple[float, float]] = field(default_factory=list)
    total_published: int = 0
    labels_received: dict[str, int] = field(default_factory=dict)
    node: dict[str, str] = field(default_factory=dict)
    publish_late: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Driver:
    """A test-side rclpy node (its own context): image publishers, labels and diagnostics readers."""

    def __init__(self, cams: list[str], reliable: bool) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image

        from corr_ros.qos import reliable_qos, sensor_qos

        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("corr_load_driver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = reliable_qos(RELIABLE_DEPTH) if reliable else sensor_qos(5)
        self.pubs = {c: self.node.create_publisher(Image, f"{c}/image_raw", qos) for c in cams}
        self.lock = threading.Lock()
        self.received: dict[int, dict[str, int]] = {}  # stamp -> {cam: receive time ns}
        self.counts = dict.fromkeys(cams, 0)
        self.subs = [self.node.create_subscription(Image, f"{c}/labels", lambda m, c=c: self._on_labels(c, m),
                                                   reliable_qos(100)) for c in cams]
        self.pipeline: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable_qos(10))
        self._spin = threading.Thread(target=self._run, name="corr_load_spin", daemon=True)
        self._stop = threading.Event()
        self._spin.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def _on_labels(self, cam: str, msg: Any) -> None:
        now = time.time_ns()
        stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        with self.lock:
            self.received.setdefault(stamp, {})[cam] = now
            self.counts[cam] += 1

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith(": pipeline") and status.name.startswith("corr_node"):
                with self.lock:
                    self.pipeline = {kv.key: kv.value for kv in status.values}

    def ready(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs.values()) and all(
            s.get_publisher_count() > 0 for s in self.subs)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self._spin.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max", "mean")}
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max()), "mean": float(arr.mean())}


def _node_args(spec: LoadSpec, cams: list[str], masks: list[Path]) -> list[str]:
    params: dict[str, Any] = {
        "cameras": cams, "initial_masks": [str(m) for m in masks], "backend": spec.backend,
        "precision": spec.precision, "diagnostics_period": 0.5, "camera_timeout": 0.0, "publish_overlay": False,
    }
    if spec.checkpoint:
        params["checkpoint"] = spec.checkpoint
    else:
        params.update(random_init=True, seed=int(spec.random_init_seed or 0))
    if spec.reliable_input:
        params.update({"qos.input.reliability": "reliable", "qos.input.depth": RELIABLE_DEPTH})
    params.update(spec.params)
    args = []
    for name, value in params.items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(f"'{v}'" for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{name}:={text}"]
    return args


def run_load(spec: LoadSpec, env: dict[str, str], work_dir: str | Path | None = None,
             log: Any = print) -> LoadResult:
    """Starts ``corr_node``, drives it at ``spec.rate_hz`` and measures it (module docstring).

    Args:
        spec: what to run.
        env: the environment of the node process (:func:`corr_ros.launcher.isolated_env`); this
            process must use the same ``ROS_DOMAIN_ID``.
        work_dir: where masks and the node's log go (default: a temporary folder, removed).
        log: called with progress lines.

    Raises:
        ProcessError: the node did not come up, or exited (with its log's tail).
    """
    from corr_core.data.labels import write_label_png
    from corr_ros.conversions import ns_to_stamp, rgb_to_image

    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="corr-load-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cams = camera_names(spec.cameras)
    frames, masks = {}, []
    for i, cam in enumerate(cams):
        seq, labels = synthetic_scene(i, spec.size, 30)
        frames[cam] = [rgb_to_image(f) for f in seq]
        for msg in frames[cam]:
            msg.header.frame_id = f"{cam}_optical_frame"
        masks.append(work / f"{cam}_mask.png")
        write_label_png(masks[-1], labels)
    result = LoadResult(spec=asdict(spec))
    started = time.monotonic()
    node = RosProcess.start("corr_ros.nodes.corr_node", _node_args(spec, cams, masks), env,
                            work / f"corr_node_{int(time.time())}.log")
    stats = ProcStats(node.popen.pid)
    driver = _Driver(cams, spec.reliable_input)
    stamps: list[tuple[int, float]] = []  # (stamp ns, monotonic publish time)
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(spec.sample_period_s):
            result.memory.append((round(time.monotonic() - started, 2), round(stats.rss_mib(), 1)))

    sampler = threading.Thread(target=sample, name="corr_load_sampler", daemon=True)
    sampler.start()
    try:
        wait_until(driver.ready, spec.startup_s, [node], "corr_node to subscribe to the cameras and publish labels")
        log(f"corr_node up after {time.monotonic() - started:.1f} s; publishing {len(cams)} x {spec.size[1]}x"
            f"{spec.size[0]} at {spec.rate_hz:g} Hz for {spec.warmup_s:g} + {spec.duration_s:g} s")
        period = 1.0 / spec.rate_hz
        total = int(round((spec.warmup_s + spec.duration_s) * spec.rate_hz))
        measure_from = int(round(spec.warmup_s * spec.rate_hz))
        t0 = time.monotonic()
        cpu_mem: dict[str, Any] = {}
        for i in range(total):
            due = t0 + i * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif -delay > period:
                result.publish_late += 1
            if i == measure_from:
                cpu_mem["start"] = (time.monotonic(), stats.cpu_s(), len(result.memory))
            node.check_alive()
            stamp = time.time_ns()
            for cam in cams:
                msg = frames[cam][i % len(frames[cam])]
                ns_to_stamp(stamp, msg.header)
                driver.pubs[cam].publish(msg)
            stamps.append((stamp, time.monotonic()))
        cpu_mem["end"] = (time.monotonic(), stats.cpu_s(), len(result.memory))
        result.total_published = total

        def drained() -> bool:
            with driver.lock:
                diag = dict(driver.pipeline)
            done = int(diag.get("sets_processed", 0)) + int(diag.get("dropped_sets", 0))
            return bool(diag) and done >= int(diag.get("sets_completed", 0)) and (
                not spec.reliable_input or int(diag.get("sets_completed", 0)) >= total)

        time.sleep(2 * 0.5)  # two diagnostics periods: the counters include the last sets
        try:
            wait_until(drained, spec.drain_s, [node], "corr_node to finish the last sets")
        except Exception as exc:  # report what there is
            log(f"warning: {exc}")
        time.sleep(1.0)  # the last labels and one more diagnostics message
    finally:
        stop_sampling.set()
        sampler.join(timeout=5.0)
        with driver.lock:
            received = {s: dict(v) for s, v in driver.received.items()}
            result.labels_received = dict(driver.counts)
            result.node = dict(driver.pipeline)
        driver.close()
        node.stop(timeout=10.0)
        result.seconds = round(time.monotonic() - started, 1)
    window = stamps[measure_from:]
    latencies = []
    for stamp, _ in window:
        got = received.get(stamp, {})
        if len(got) == len(cams):
            latencies.append((max(got.values()) - stamp) / 1e6)
    result.published = len(window)
    result.processed = len(latencies)
    result.dropped = result.published - result.processed
    (ta, ca, ia), (tb, cb, ib) = cpu_mem["start"], cpu_mem["end"]
    result.throughput_hz = result.processed / max(1e-9, tb - ta)
    result.latency_ms = {k: round(v, 1) for k, v in _percentiles(latencies).items()}
    result.cpu_percent = round(100.0 * (cb - ca) / max(1e-9, tb - ta), 1)
    rss = [m for _, m in result.memory[ia:ib] if m > 0] or [m for _, m in result.memory if m > 0] or [0.0]
    q = max(1, len(rss) // 4)
    result.rss_mib = {"start": rss[0], "end": rss[-1], "max": max(rss),
                      "growth": round(float(np.median(rss[-q:]) - np.median(rss[:q])), 1)}
    if tmp is not None:
        tmp.cleanup()
    return result
