"""``corr bench propagate``: frames per second and peak memory of label propagation.

The windowed (``local``, default) implementation against the ``dense`` baseline, at DAVIS 480p and
240p (stride-8 features; the propagation settings are :mod:`corr_core.options`' flags with
:class:`~corr_core.propagation.config.PropagationConfig`'s defaults: m = 20, k = 10, radius 12),
on CPU and, when available, CUDA. Three kinds of measurement (see
:mod:`corr_core.propagation.bench`): ``propagation`` (one call of the functional step),
``stream`` (the streaming tracker per frame, propagation alone) and ``features`` (the tracker per
frame with a ResNet-18 stride-8 backbone, random weights). Every configuration runs in a fresh
subprocess, so its peak memory can be read from ``ru_maxrss`` (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from corr_core.commands.bench_common import (
    add_report_args,
    check_out_arg,
    host_facts,
    parse_resolutions,
    write_report,
)
from corr_core.errors import ConfigError, CorrError
from corr_core.options import add_propagation_args, propagation_overrides

#: The propagation settings ``corr bench propagate`` takes (``corr_core.options`` flags).
PROPAGATION_FLAGS = ("context", "topk", "radius", "temperature")
WORKER_TIMEOUT_S = 1800


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr bench propagate``."""
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
        help="comma-separated frame sizes: 480p, 240p, 360p, 720p or HxW (default 480p,240p)",
    )
    add_propagation_args(prop, PROPAGATION_FLAGS)
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
        default="propagation,stream,features",
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
    add_report_args(prop, "propagate")
    prop.set_defaults(func=run_propagate)


def propagation_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The propagation flags given, over :class:`PropagationConfig`'s defaults."""
    from corr_core.propagation.config import PropagationConfig

    defaults = PropagationConfig()
    return {**{k: getattr(defaults, k) for k in PROPAGATION_FLAGS}, **propagation_overrides(args, PROPAGATION_FLAGS)}


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
    from corr_core.propagation.bench import KINDS

    for name, low in (
        ("repeats", 1),
        ("warmup", 0),
        ("channels", 1),
        ("objects", 1),
    ):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"--kinds: unknown {bad or kinds}; choose from {', '.join(KINDS)}")
    return kinds


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
        kinds: measurements from :data:`corr_core.propagation.bench.KINDS`.
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
        "host": {**host_facts(), "torch": torch.__version__, "cuda_devices": cuda},
        "results": results,
    }


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
    """Runs ``corr bench propagate``; returns the exit code."""
    kinds = _check(args)
    resolutions = parse_resolutions(args.resolutions)
    devices = _devices(args.device)
    check_out_arg(args.out, args.overwrite)
    settings = {
        **propagation_settings(args),
        **{name: getattr(args, name) for name in ("repeats", "warmup", "channels", "backbone", "objects", "threads")},
    }
    report = bench_propagate(resolutions, devices, kinds, settings, skip_dense=args.skip_dense)
    write_report(report, args.out, "propagate", markdown_table(report))
    return 0
