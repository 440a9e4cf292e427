"""``corr bench``: speed and memory benchmarks.

Sub-commands:

* ``backends``: frames per second of the feature network on PyTorch and on onnxruntime (its ONNX
  export), as a ratio to PyTorch measured in the same run.
* ``propagate``: frames per second and peak memory of label propagation, the windowed (``local``,
  default) implementation against the ``dense`` baseline, at DAVIS 480p and 240p (stride-8
  features, m = 20, k = 10, radius 12 by default), on CPU and, when available, CUDA. Three kinds
  of measurement (see :mod:`corr_core.propagation.bench`): ``propagation`` (one call of the
  functional step), ``stream`` (the streaming tracker per frame, propagation alone) and
  ``features`` (the tracker per frame with a ResNet-18 stride-8 backbone, random weights).
  Every configuration runs in a fresh subprocess, so its peak memory can be read from
  ``ru_maxrss`` (CPU) or ``torch.cuda.max_memory_allocated`` (CUDA).

Examples::

    corr bench propagate
    corr bench propagate --resolutions 480p --kinds propagation --repeats 5 --out runs/bench/p.json
    corr bench propagate --device cuda --skip-dense
    corr bench backends --resolutions 240p,480p
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, CorrError

RESOLUTIONS = {"480p": (480, 854), "240p": (240, 427), "360p": (360, 640), "720p": (720, 1280)}
KINDS = ("propagation", "stream", "features")
WORKER_TIMEOUT_S = 1800


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr bench`` and its sub-commands ``propagate`` and ``backends``."""
    parser = subparsers.add_parser(
        "bench",
        help="speed/memory benchmarks (label propagation: local vs dense; feature network: torch vs onnxruntime)",
        description="Speed and memory benchmarks.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    prop = tasks.add_parser(
        "propagate",
        help="frames per second and peak memory of label propagation (local vs dense baseline)",
        description=(
            "Time label propagation alone and features + propagation at the given resolutions, the "
            "windowed implementation against the dense baseline, each configuration in a fresh "
            "process (peak memory: ru_maxrss on CPU, max_memory_allocated on CUDA). Writes a JSON "
            "file and a Markdown table beside it, and prints the table."
        ),
    )
    prop.add_argument(
        "--resolutions",
        default="480p,240p",
        help=f"comma-separated frame sizes: {', '.join(RESOLUTIONS)} or HxW (default 480p,240p)",
    )
    prop.add_argument(
        "--context", type=int, default=20, help="m, preceding frames in the context (default 20)"
    )
    prop.add_argument("--topk", type=int, default=10, help="k, entries kept per position (default 10)")
    prop.add_argument("--radius", type=float, default=12.0, help="radius in feature cells (default 12)")
    prop.add_argument("--temperature", type=float, default=0.05, help="softmax temperature (default 0.05)")
    prop.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (default 3)")
    prop.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    prop.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N, or auto: cpu and, when available, cuda (default auto)",
    )
    prop.add_argument("--skip-dense", action="store_true", help="do not run the dense baseline")
    prop.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="comma-separated measurements: propagation, stream, features (default all)",
    )
    prop.add_argument(
        "--channels", type=int, default=256, help="feature channels without a backbone (default 256)"
    )
    prop.add_argument(
        "--backbone",
        default="resnet18_s8",
        help="backbone of the features kind (default resnet18_s8, stride 8)",
    )
    prop.add_argument("--objects", type=int, default=3, help="objects besides background (default 3)")
    prop.add_argument("--threads", type=int, default=0, help="torch threads per worker (default: torch's)")
    prop.add_argument(
        "--out",
        type=Path,
        default=None,
        help="result JSON (a .md table is written beside it); default runs/bench/propagate-<time>.json",
    )
    prop.set_defaults(func=run_propagate)
    back = tasks.add_parser(
        "backends",
        help="feature-network frames per second: PyTorch against onnxruntime (the ONNX export)",
        description=(
            "Exports the checkpoint to ONNX (in a temporary folder, parity-checked), then times one "
            "frame through the PyTorch network and through onnxruntime at each resolution, on the "
            "same threads, and reports the ratio to PyTorch measured in the same run. Writes a JSON "
            "file and a Markdown table beside it."
        ),
    )
    src = back.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, default=None, help="corr checkpoint (default: the shipped one)")
    src.add_argument("--random-init", type=int, default=None, metavar="SEED", help="a randomly initialised network")
    back.add_argument("--resolutions", default="240p,480p", help="frame sizes (default 240p,480p)")
    back.add_argument("--repeats", type=int, default=10, help="timed frames per backend and size (default 10)")
    back.add_argument("--warmup", type=int, default=2, help="untimed frames first (default 2)")
    back.add_argument("--threads", type=int, default=0, help="threads for both backends (default: torch's)")
    back.add_argument("--out", type=Path, default=None,
                      help="result JSON (a .md table beside it); default runs/bench/backends-<time>.json")
    back.set_defaults(func=run_backends)


# --------------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------------


def parse_resolution(text: str) -> tuple[str, tuple[int, int]]:
    """``"480p"`` -> ``("480p", (480, 854))``; ``"64x96"`` -> ``("64x96", (64, 96))``.

    Raises:
        ConfigError: for anything else.
    """
    name = text.strip()
    if name in RESOLUTIONS:
        return name, RESOLUTIONS[name]
    parts = name.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return name, (int(parts[0]), int(parts[1]))
    raise ConfigError(f"--resolutions: {name!r} is neither one of {sorted(RESOLUTIONS)} nor HxW (e.g. 64x96)")


def _devices(choice: str) -> list[str]:
    import torch

    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if choice == "cpu":
        return ["cpu"]
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {choice}: CUDA is not available here")
        return [choice]
    raise ConfigError(f"--device must be cpu, cuda, cuda:N or auto, got {choice!r}")


def _check(args: argparse.Namespace) -> list[str]:
    for name, low in (
        ("context", 0),
        ("topk", 1),
        ("repeats", 1),
        ("warmup", 0),
        ("channels", 1),
        ("objects", 1),
    ):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    for name in ("radius", "temperature"):
        value = getattr(args, name)
        if not value > 0 or (name == "temperature" and math.isinf(value)):
            raise ConfigError(f"--{name} must be a number > 0, got {value}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"--kinds: unknown {bad or kinds}; choose from {', '.join(KINDS)}")
    return kinds


# --------------------------------------------------------------------------------------------
# workers
# --------------------------------------------------------------------------------------------


def _run_worker(spec: dict[str, Any], workdir: Path, tag: str) -> dict[str, Any]:
    """Runs one configuration in a fresh Python process and returns its measurement."""
    spec_path, result_path = workdir / f"{tag}.spec.json", workdir / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "corr_core.propagation.bench", str(spec_path), str(result_path)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise CorrError(f"bench worker {tag} ran past {WORKER_TIMEOUT_S} s") from exc
    if proc.returncode != 0 or not result_path.exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
        raise CorrError(f"bench worker {tag} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return json.loads(result_path.read_text())


def _max_abs_diff(a: Path, b: Path) -> float:
    import numpy as np

    return float(np.abs(np.load(a, allow_pickle=False) - np.load(b, allow_pickle=False)).max())


def bench_propagate(
    resolutions: list[tuple[str, tuple[int, int]]],
    devices: list[str],
    kinds: list[str],
    settings: dict[str, Any],
    skip_dense: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Runs every (device, resolution, kind, method) configuration in its own process.

    Args:
        resolutions: ``(name, (H, W))`` frame sizes.
        devices: torch device strings.
        kinds: measurements from :data:`KINDS`.
        settings: ``context``, ``topk``, ``radius``, ``temperature``, ``repeats``, ``warmup``,
            ``channels``, ``backbone``, ``objects``, ``threads`` (the worker spec fields).
        skip_dense: measure the local implementation only.
        log: called with one progress line per configuration.

    Returns:
        The report: ``settings``, ``host`` and ``results``, one entry per (device, resolution,
        kind) with ``local`` and ``dense`` measurements, ``speedup`` (dense median time / local
        median time) and, for kind ``propagation``, ``max_abs_diff`` between their soft labels.
    """
    import torch

    methods = ["local"] + ([] if skip_dense else ["dense"])
    stride = 8
    results = []
    with tempfile.TemporaryDirectory(prefix="corr-bench-") as tmp:
        workdir = Path(tmp)
        for device in devices:
            for name, (height, width) in resolutions:
                for kind in kinds:
                    entry: dict[str, Any] = {
                        "device": device,
                        "resolution": name,
                        "frame": [height, width],
                        "grid": [-(-height // stride), -(-width // stride)],
                        "kind": kind,
                    }
                    outputs = {}
                    for method in methods:
                        tag = f"{device.replace(':', '')}-{name}-{kind}-{method}"
                        spec = {
                            **settings,
                            "kind": kind,
                            "method": method,
                            "device": device,
                            "frame": [height, width],
                        }
                        if kind == "propagation":
                            outputs[method] = workdir / f"{tag}.npy"
                            spec["output"] = str(outputs[method])
                        entry[method] = _run_worker(spec, workdir, tag)
                        m = entry[method]
                        log(
                            f"{device} {name} {kind:<11} {method:<5} {1e3 * m['seconds_median']:9.1f} ms "
                            f"{m['fps']:7.2f} fps  peak {m['peak_mib']:8.1f} MiB"
                        )
                    if "dense" in entry:
                        entry["speedup"] = entry["dense"]["seconds_median"] / entry["local"]["seconds_median"]
                        if kind == "propagation":
                            entry["max_abs_diff"] = _max_abs_diff(outputs["local"], outputs["dense"])
                    results.append(entry)
    cuda = [torch.cuda.get_device_name(d) for d in devices if d.startswith("cuda")]
    return {
        "command": "corr bench propagate",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {**settings, "feature_stride": stride, "methods": methods, "kinds": kinds},
        "host": {
            "machine": platform.machine(),
            "processor": _cpu_name(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda_devices": cuda,
        },
        "results": results,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def _cell(m: dict[str, Any] | None) -> tuple[str, str]:
    if not m:
        return "-", "-"
    return f"{1e3 * m['seconds_median']:.1f} ({m['fps']:.2f})", f"{m['peak_mib']:.1f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table (one row per device, resolution and kind)."""
    s = report["settings"]
    lines = [
        f"# corr bench propagate ({report['created']})",
        "",
        f"m={s['context']}, k={s['topk']}, radius={s['radius']}, stride {s['feature_stride']}, "
        f"C={s['channels']} (backbone {s['backbone']} for kind features), {s['repeats']} timed runs; "
        f"host: {report['host']['processor']} ({report['host']['cpu_count']} CPUs), torch {report['host']['torch']}.",
        "",
        "| device | resolution | grid | kind | local ms (fps) | local peak MiB | dense ms (fps) "
        "| dense peak MiB | speed-up dense/local | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lt, lm = _cell(r.get("local"))
        dt, dm = _cell(r.get("dense"))
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        diff = f"{r['max_abs_diff']:.2e}" if "max_abs_diff" in r else "-"
        grid = f"{r['grid'][0]}x{r['grid'][1]}"
        lines.append(
            f"| {r['device']} | {r['resolution']} | {grid} | {r['kind']} | {lt} | {lm} | {dt} | {dm} | {speed} | {diff} |"
        )
    lines += [
        "",
        "Kinds: propagation = one call of propagate_local / propagate_dense (functional API); stream = "
        "Tracker.step_features per frame (propagation alone, memories kept between frames); features = "
        "Tracker.step per frame with the backbone. Peak memory is measured in a fresh process per row "
        "and method, above the baseline after imports and inputs.",
        "",
    ]
    return "\n".join(lines)


def run_propagate(args: argparse.Namespace) -> int:
    kinds = _check(args)
    resolutions = [parse_resolution(r) for r in args.resolutions.split(",") if r.strip()]
    if not resolutions:
        raise ConfigError("--resolutions is empty")
    devices = _devices(args.device)
    settings = {
        name: getattr(args, name)
        for name in (
            "context",
            "topk",
            "radius",
            "temperature",
            "repeats",
            "warmup",
            "channels",
            "backbone",
            "objects",
            "threads",
        )
    }
    if args.out is not None and args.out.suffix != ".json":
        raise ConfigError(f"--out must name a .json file, got {args.out}")
    report = bench_propagate(resolutions, devices, kinds, settings, skip_dense=args.skip_dense)
    _write_report(report, args.out, "propagate", markdown_table(report))
    return 0


# --------------------------------------------------------------------------------------------
# corr bench backends
# --------------------------------------------------------------------------------------------


def _time_frames(model: Any, frame: Any, repeats: int, warmup: int) -> list[float]:
    import time

    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(frame)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


def bench_backends(checkpoint: Path | None, random_init: int | None,
                   resolutions: list[tuple[str, tuple[int, int]]], repeats: int, warmup: int,
                   threads: int, log: Any = print) -> dict[str, Any]:
    """Times the feature network on PyTorch and on onnxruntime; see ``corr bench backends``."""
    import statistics

    import torch

    from corr_core.api import export_checkpoint_onnx, load_feature_model
    from corr_core.runtime import OnnxFeatureModel

    if threads > 0:
        torch.set_num_threads(threads)
    n_threads = torch.get_num_threads()
    torch_model, meta = load_feature_model(checkpoint, random_init_seed=random_init)
    results = []
    with tempfile.TemporaryDirectory(prefix="corr-bench-") as tmp:
        h0, w0 = resolutions[0][1]
        export = export_checkpoint_onnx(checkpoint, Path(tmp) / "net.onnx", size=(h0, w0), random_init_seed=random_init)
        onnx_model = OnnxFeatureModel(export["path"], threads=n_threads)
        for name, (h, w) in resolutions:
            frame = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
            entry: dict[str, Any] = {"resolution": name, "frame": [h, w]}
            for backend, model in (("torch", torch_model), ("onnxruntime", onnx_model)):
                times = _time_frames(model, frame, repeats, warmup)
                med = statistics.median(times)
                entry[backend] = {"seconds_median": med, "fps": 1.0 / med, "seconds": times}
                log(f"{name} {backend:<11} {1e3 * med:8.1f} ms  {1.0 / med:6.2f} fps")
            with torch.inference_mode():
                entry["max_abs_diff"] = float((onnx_model(frame) - torch_model(frame)).abs().max())
            entry["speedup_vs_torch"] = entry["torch"]["seconds_median"] / entry["onnxruntime"]["seconds_median"]
            results.append(entry)
    return {
        "command": "corr bench backends",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"checkpoint": None if checkpoint is None else str(checkpoint), "random_init": random_init,
                     "arch": meta.get("arch"), "repeats": repeats, "warmup": warmup, "threads": n_threads,
                     "device": "cpu", "parity": export["parity_max_abs_diff"]},
        "host": {"processor": _cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                 "torch": torch.__version__, "onnxruntime": _ort_version()},
        "results": results,
    }


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def backends_table(report: dict[str, Any]) -> str:
    """The backends report as a Markdown table."""
    s, host = report["settings"], report["host"]
    lines = [
        f"# corr bench backends ({report['created']})",
        "",
        f"{s['arch']} from {s['checkpoint'] or 'random init'}, {s['repeats']} timed frames after {s['warmup']} "
        f"warm-up, {s['threads']} threads, {s['device']}; host: {host['processor']} ({host['cpu_count']} CPUs), "
        f"torch {host['torch']}, onnxruntime {host['onnxruntime']}.",
        "",
        "| resolution | torch ms (fps) | onnxruntime ms (fps) | onnxruntime speed-up vs torch | max abs diff |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        t, o = r["torch"], r["onnxruntime"]
        lines.append(
            f"| {r['resolution']} ({r['frame'][0]}x{r['frame'][1]}) | {1e3 * t['seconds_median']:.1f} ({t['fps']:.2f}) "
            f"| {1e3 * o['seconds_median']:.1f} ({o['fps']:.2f}) | {r['speedup_vs_torch']:.2f}x | {r['max_abs_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def _write_report(report: dict[str, Any], out: Path | None, prefix: str, table: str) -> Path:
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / "bench" / f"{prefix}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return out


def run_backends(args: argparse.Namespace) -> int:
    for name, low in (("repeats", 1), ("warmup", 0), ("threads", 0)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if args.out is not None and args.out.suffix != ".json":
        raise ConfigError(f"--out must name a .json file, got {args.out}")
    resolutions = [parse_resolution(r) for r in args.resolutions.split(",") if r.strip()]
    if not resolutions:
        raise ConfigError("--resolutions is empty")
    checkpoint = args.checkpoint
    if checkpoint is None and args.random_init is None:
        from corr_core.api import packaged_checkpoint

        checkpoint = packaged_checkpoint()
    report = bench_backends(checkpoint, args.random_init, resolutions, args.repeats, args.warmup, args.threads)
    _write_report(report, args.out, "backends", backends_table(report))
    return 0
