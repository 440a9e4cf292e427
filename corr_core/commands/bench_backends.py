"""``corr bench backends``: frames per second of the feature network on PyTorch and on
onnxruntime (its ONNX export, parity-checked), as a ratio to PyTorch measured in the same run."""

from __future__ import annotations

import argparse
import datetime as _dt
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
from corr_core.errors import ConfigError
from corr_core.options import add_model_args, model_source


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr bench backends``."""
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
    add_model_args(back, default_help="the shipped checkpoint", device=False)
    back.add_argument("--resolutions", default="240p,480p", help="frame sizes (default 240p,480p)")
    back.add_argument("--repeats", type=int, default=10, help="timed frames per backend and size (default 10)")
    back.add_argument("--warmup", type=int, default=2, help="untimed frames first (default 2)")
    back.add_argument("--threads", type=int, default=0, help="threads for both backends (default: torch's)")
    add_report_args(back, "backends")
    back.set_defaults(func=run_backends)


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
    """Times the feature network on PyTorch and on onnxruntime; see ``corr bench backends``.

    Args:
        checkpoint: corr checkpoint, or None with ``random_init``.
        random_init: seed of a randomly initialised network.
        resolutions: ``(name, (H, W))`` frame sizes; the export is traced at the first.
        repeats: timed frames per backend and size.
        warmup: untimed frames first.
        threads: threads of both backends (0: torch's default).
        log: called with one line per measurement.

    Returns:
        The report: ``settings``, ``host`` and ``results`` (per size: each backend's times,
        ``speedup_vs_torch`` and the largest difference between their features).
    """
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
        export = export_checkpoint_onnx(checkpoint, Path(tmp) / "net.onnx", size=(h0, w0),
                                        random_init_seed=random_init)
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
        "host": {**{k: v for k, v in host_facts().items() if k != "machine"}, "torch": torch.__version__,
                 "onnxruntime": _ort_version()},
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


def run_backends(args: argparse.Namespace) -> int:
    """Runs ``corr bench backends``; returns the exit code."""
    from corr_core.api import packaged_checkpoint

    for name, low in (("repeats", 1), ("warmup", 0), ("threads", 0)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    check_out_arg(args.out, args.overwrite)
    resolutions = parse_resolutions(args.resolutions)
    source = model_source(args, default=packaged_checkpoint())
    report = bench_backends(source.checkpoint, source.random_init_seed, resolutions, args.repeats, args.warmup,
                            args.threads)
    write_report(report, args.out, "backends", backends_table(report))
    return 0
