"""``corr bench node``: the live ``corr_node`` under a fixed camera rate, and the soak.

Every configuration (cameras x resolution x backend) starts ``corr_node`` in its own process and
plays synthetic cameras into it over real ROS 2 topics at ``--rate`` (:mod:`corr_ros.loadtest`):
throughput (processed synchronised sets per second), latency camera stamp -> labels received
(p50/p95/p99), dropped sets (published - processed), node CPU (% of one core) and memory. Every
backend present on the host is run (torch; onnxruntime where installed; tensorrt where installed
with a CUDA device), or those of ``--backends``, each ``BACKEND[:PRECISION]`` (``torch:bf16,
onnxruntime``; ``--precision`` otherwise). ``--param`` sets further node parameters of every row
(the live profile: ``--param context:=10 --param radius:=8.0 --param match_precision:=bf16``).
``--baseline`` adds the node as it was before this work (torch fp32, one camera at a time:
``batch_cameras: false``, and the node's default, offline propagation profile: ``--param`` does
not apply to it), and each row's throughput is given as a ratio to it, measured in the same run.
Results go to ``--out`` (JSON, with a Markdown table beside it; default
``docs/bench/node-<time>.json``).

``--soak`` runs one configuration for ``--duration`` seconds (600 for the full soak) with reliable
camera subscriptions, so every published set reaches the node, and checks what the CI test checks
in 25 s: dropped = published - processed (the node's own counters), the labels of every processed
set received, and memory bounded (growth under ``--max-growth-mib``); it writes the memory curve
(``.csv`` and ``.svg``) beside the JSON (default ``docs/soak/soak-<time>.json``)::

    corr bench node --cameras 2,3 --resolutions 240p,480p --rate 30 --duration 30 --baseline
    corr bench node --cameras 2 --resolutions 240p --backends torch:bf16,onnxruntime --baseline \
        --param context:=10 --param radius:=8.0 --param match_precision:=bf16
    corr bench node --soak --cameras 2 --resolutions 240p --rate 30 --duration 600

A plugin of the ``corr`` command (entry point ``bench_node`` of the group ``corr.commands``): it adds
``node`` to ``corr bench``. No rclpy at import time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import platform
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "available_backends", "backend_choices", "main", "markdown", "memory_svg", "run", "run_bench",
           "soak_verdict"]


def available_backends(device: str = "cpu") -> list[str]:
    """The backends this host can run ``corr_node`` on: torch, onnxruntime (installed), tensorrt
    (installed, with a CUDA device)."""
    out = ["torch"]
    if importlib.util.find_spec("onnxruntime") is not None:
        out.append("onnxruntime")
    if importlib.util.find_spec("tensorrt") is not None and device.startswith("cuda"):
        out.append("tensorrt")
    return out


def soak_verdict(result: dict[str, Any], max_growth_mib: float) -> dict[str, Any]:
    """What the soak must show: every published set completed by the node, processed + dropped =
    completed, the labels of every processed set received, memory growth bounded."""
    node = result["node"]
    completed, processed = int(node.get("sets_completed", -1)), int(node.get("sets_processed", -1))
    dropped = int(node.get("dropped_sets", -1))
    checks = {
        "every published set reached the node": completed == result["total_published"],
        "dropped sets = published - processed": dropped == result["total_published"] - processed,
        "labels of every processed set received": all(n == processed for n in result["labels_received"].values()),
        f"memory growth under {max_growth_mib:g} MiB": result["rss_mib"]["growth"] < max_growth_mib,
        "sets were processed": processed > 0,
    }
    return {"passed": all(checks.values()), "checks": checks}


def backend_choices(text: str, precision: str = "fp32", device: str = "cpu") -> list[tuple[str, str]]:
    """``--backends`` as ``[(backend, precision)]``: comma-separated ``BACKEND[:PRECISION]`` items
    (``precision`` where an item has none); empty: every backend present, at ``precision``.

    Raises:
        ConfigError: an unknown backend or precision, naming the item.
    """
    from corr_core.errors import ConfigError
    from corr_core.options import BACKENDS, PRECISIONS

    if not str(text or "").strip():
        return [(b, precision) for b in available_backends(device)]
    out = []
    for item in str(text).split(","):
        if not item.strip():
            continue
        backend, _, prec = (part.strip() for part in item.partition(":"))
        prec = prec or precision
        if backend not in BACKENDS or backend == "auto":
            raise ConfigError(f"--backends: unknown backend {backend!r} in {item!r} "
                              f"(one of {[b for b in BACKENDS if b != 'auto']})")
        if prec not in PRECISIONS:
            raise ConfigError(f"--backends: unknown precision {prec!r} in {item!r} (one of {list(PRECISIONS)})")
        out.append((backend, prec))
    return out


def node_params(items: list[str]) -> dict[str, str]:
    """``--param NAME:=VALUE`` items as ``{NAME: VALUE}`` (values as ROS reads them: YAML).

    Raises:
        ConfigError: an item without ``:=`` or without a name.
    """
    from corr_core.errors import ConfigError

    out = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name.strip():
            raise ConfigError(f"--param: expected NAME:=VALUE (as ros2 run -p), got {item!r}")
        out[name.strip()] = value.strip()
    return out


def run_bench(configs: list[dict[str, Any]], common: dict[str, Any], env: dict[str, str], log: Any = print,
              work_dir: Path | None = None) -> dict[str, Any]:
    """Runs every configuration (a :class:`~corr_ros.loadtest.LoadSpec` each); returns the report.

    Args:
        configs: ``{"cameras", "resolution", "size", "backend", "precision", "baseline"}`` per run.
        common: the :class:`~corr_ros.loadtest.LoadSpec` fields shared by the runs (the baseline
            takes only ``params["device"]`` of its ``params``).
        env: the nodes' environment (:func:`corr_ros.launcher.isolated_env`).
        log: called with progress lines.
        work_dir: where the nodes' logs go (default: temporary).
    """
    from corr_ros.loadtest import LoadSpec, run_load

    rows = []
    for cfg in configs:
        params = dict(common.get("params", {}))
        precision = cfg.get("precision") or common.get("precision", "fp32")
        if cfg.get("baseline"):
            params = {k: v for k, v in params.items() if k == "device"}
            params["batch_cameras"] = False
        spec = LoadSpec(**{**common, "params": params, "cameras": cfg["cameras"], "size": tuple(cfg["size"]),
                           "backend": cfg["backend"], "precision": precision})
        name = f"{cfg['cameras']} cams {cfg['resolution']} {cfg['backend']}" + (
            f" {precision}" if precision != "fp32" else "") + (" (baseline)" if cfg.get("baseline") else "")
        log(f"--- {name}")
        res = run_load(spec, env, None if work_dir is None else work_dir / name.replace(" ", "_"), log=log).to_dict()
        res["name"], res["config"] = name, cfg
        log(f"{name}: {res['throughput_hz']:.2f} sets/s, latency p50/p95/p99 {res['latency_ms']['p50']}/"
            f"{res['latency_ms']['p95']}/{res['latency_ms']['p99']} ms, dropped {res['dropped']}/{res['published']}, "
            f"CPU {res['cpu_percent']}%, RSS {res['rss_mib']['max']:.0f} MiB")
        rows.append(res)
    for row in rows:  # throughput relative to the baseline node, same cameras and size
        base = next((r for r in rows if r["config"].get("baseline") and r["config"]["cameras"] == row["config"][
            "cameras"] and r["config"]["resolution"] == row["config"]["resolution"]), None)
        row["vs_before"] = (row["throughput_hz"] / base["throughput_hz"]) if base and base["throughput_hz"] else None
    from importlib.metadata import version

    return {
        "command": "corr bench node",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {k: v for k, v in common.items()},
        "host": {"processor": _cpu(), "cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
                 "torch": version("torch")},
        "results": rows,
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    s, h = report["settings"], report["host"]
    lines = [
        f"# corr bench node ({report['created']})",
        "",
        f"corr_node in its own process, synthetic cameras at {s['rate_hz']:g} Hz over ROS 2 topics, "
        f"{s['warmup_s']:g} s warm-up then {s['duration_s']:g} s measured; network "
        f"{s.get('checkpoint') or 'random init'}; host {h['processor']} ({h['cpu_count']} CPUs), torch {h['torch']}. "
        "Latency: camera stamp to the last camera's labels received. Dropped: published - processed sets.",
        "",
        "| configuration | sets/s | vs baseline | latency p50 / p95 / p99 ms | dropped / published | CPU % "
        "| RSS max MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lat = r["latency_ms"]
        ratio = f"{r['vs_before']:.2f}x" if r.get("vs_before") else "-"
        lines.append(f"| {r['name']} | {r['throughput_hz']:.2f} | {ratio} | {lat['p50']} / {lat['p95']} / {lat['p99']} "
                     f"| {r['dropped']} / {r['published']} | {r['cpu_percent']} | {r['rss_mib']['max']:.0f} |")
    if report.get("soak"):
        lines += ["", "Soak: " + ("PASSED" if report["soak"]["passed"] else "FAILED")]
        lines += [f"- {'ok' if ok else 'FAILED'}: {what}" for what, ok in report["soak"]["checks"].items()]
    return "\n".join(lines) + "\n"


def memory_svg(samples: list[tuple[float, float]], title: str, width: int = 720, height: int = 260) -> str:
    """The memory curve ``[(s, MiB)]`` as a small SVG line chart."""
    if not samples:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><text x="10" y="20">' \
               f"{title}: no samples</text></svg>\n"
    pad = 50
    t = [a for a, _ in samples]
    m = [b for _, b in samples]
    lo, hi = min(m), max(m)
    span_m, span_t = max(hi - lo, 1.0), max(t[-1] - t[0], 1e-9)
    pts = " ".join(f"{pad + (a - t[0]) / span_t * (width - 2 * pad):.1f},"
                   f"{height - pad - (b - lo) / span_m * (height - 2 * pad):.1f}" for a, b in samples)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">\n'
        f'<text x="{pad}" y="20">{title}</text>\n'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>\n'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>\n'
        f'<text x="5" y="{height - pad}">{lo:.0f}</text><text x="5" y="{pad + 4}">{lo + span_m:.0f}</text>\n'
        f'<text x="{pad}" y="{height - pad + 18}">0 s</text>'
        f'<text x="{width - pad - 30}" y="{height - pad + 18}">{t[-1]:.0f} s</text>\n'
        f'<text x="{width // 2 - 40}" y="{height - 10}">RSS (MiB) over time</text>\n'
        f'<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{pts}"/>\n</svg>\n'
    )


def run(args: argparse.Namespace) -> int:
    """Runs ``corr bench node``; returns the exit code (1 when a soak check fails)."""
    import os
    import sys

    from corr_core.commands.bench_common import parse_resolutions
    from corr_core.commands.common import check_output, timestamped
    from corr_core.errors import ConfigError
    from corr_ros.launcher import isolated_env

    cams = [int(c) for c in str(args.cameras).split(",") if c.strip()]
    if not cams or min(cams) < 1:
        raise ConfigError(f"--cameras: give camera counts like 2,3; got {args.cameras!r}")
    backends = backend_choices(args.backends, args.precision, args.device)
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        raise ConfigError("--rate and --duration must be > 0, --warmup >= 0")
    resolutions = parse_resolutions(args.resolutions)
    if args.soak and (len(cams) != 1 or len(resolutions) != 1 or len(backends) != 1 or args.baseline):
        raise ConfigError("--soak runs one configuration: one --cameras, one --resolutions, one --backends")
    out = args.out or timestamped(Path("docs") / ("soak" if args.soak else "bench"), "soak" if args.soak else "node",
                                  ".json")
    if out.suffix != ".json":
        raise ConfigError(f"--out must name a .json file, got {out}")
    check_output(out, args.overwrite)
    configs = [{"cameras": n, "resolution": name, "size": list(size), "backend": b, "precision": pr}
               for n in cams for name, size in resolutions for b, pr in backends]
    if args.baseline:
        configs = [{"cameras": n, "resolution": name, "size": list(size), "backend": "torch", "precision": "fp32",
                    "baseline": True} for n in cams for name, size in resolutions] + configs
    common = {"rate_hz": args.rate, "duration_s": args.duration, "warmup_s": args.warmup,
              "checkpoint": str(args.checkpoint or ""), "random_init_seed": args.random_init,
              "precision": args.precision, "reliable_input": bool(args.soak),
              "params": {"device": args.device, **node_params(args.param)}, "sample_period_s": 1.0 if args.duration > 120 else 0.5}
    if not args.checkpoint and args.random_init is None:
        from corr_core.api import packaged_checkpoint

        ckpt = packaged_checkpoint()
        if ckpt is None:
            raise ConfigError("no checkpoint: give --checkpoint PATH or --random-init [SEED]")
        common["checkpoint"] = str(ckpt)
    env = isolated_env(domain_id=args.domain_id, pythonpath=[str(Path(__file__).resolve().parents[1])])
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]  # this process drives the node: same domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env["ROS_AUTOMATIC_DISCOVERY_RANGE"]
    report = run_bench(configs, common, env, log=lambda line: print(line, file=sys.stderr, flush=True))
    code = 0
    if args.soak:
        report["soak"] = soak_verdict(report["results"][0], args.max_growth_mib)
        code = 0 if report["soak"]["passed"] else 1
        curve = report["results"][0]["memory"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".csv").write_text("seconds,rss_mib\n" + "".join(f"{a},{b}\n" for a, b in curve))
        out.with_suffix(".svg").write_text(memory_svg(curve, f"corr_node soak: {report['results'][0]['name']}, "
                                                      f"{args.rate:g} Hz, {args.duration:g} s"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds ``node`` to ``corr bench`` (or a ``bench-node`` command where ``corr bench`` is absent)."""
    from corr_core.options import add_model_args

    bench = sub.choices.get("bench")
    tasks = None
    if bench is not None:
        tasks = next((a for a in bench._actions if isinstance(a, argparse._SubParsersAction)), None)
    target, name = (tasks, "node") if tasks is not None else (sub, "bench-node")
    p = target.add_parser(name, help="the live corr_node at a fixed camera rate over ROS 2 topics (throughput, "
                          "latency, drops, CPU, memory; --soak)", description=__doc__,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p, default_help="the shipped checkpoint")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "int8"), help="[fp32]")
    p.add_argument("--cameras", default="2,3", help="camera counts to run (default 2,3)")
    p.add_argument("--resolutions", default="240p,480p", help="frame sizes (default 240p,480p)")
    p.add_argument("--backends", default="", help="backends to run, BACKEND[:PRECISION] comma-separated, e.g. "
                   "torch:bf16,onnxruntime (default: every backend present, at --precision)")
    p.add_argument("--baseline", action="store_true",
                   help="also run the node as it was before this work (torch fp32, one camera at a time, the "
                        "default propagation profile; --param does not apply to it) and give ratios to it")
    p.add_argument("--rate", type=float, default=30.0, help="sets per second published (default 30)")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per configuration (default 30)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds published before measuring (default 5)")
    p.add_argument("--soak", action="store_true", help="soak: one configuration, reliable inputs, checks + memory curve")
    p.add_argument("--max-growth-mib", type=float, default=50.0, help="soak: allowed memory growth (default 50)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="a corr_node parameter for every run but the baseline (repeatable), e.g. the live "
                        "propagation profile: --param context:=10 --param radius:=8.0 --param match_precision:=bf16")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID of the run (default: a free one)")
    p.add_argument("--out", type=Path, default=None, help="report .json (default docs/bench/node-<time>.json, "
                   "docs/soak/soak-<time>.json with --soak)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    """``python -m corr_ros.bench_node [options]``: ``corr bench node`` without the installed plugin."""
    import sys

    from corr_core.errors import CorrError

    parser = argparse.ArgumentParser(prog="corr")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("bench").add_subparsers(dest="task", required=True)
    add_parser(sub)
    args = parser.parse_args(["bench", "node", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except CorrError as exc:
        print(f"corr bench node: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
