"""``corr bench crossview``: how long one cross-view match takes (what a camera's re-match costs
``corr_node``'s worker), from images alone and with the cameras' geometry, as a ratio to the
images-only match measured on the same queries in the same run.

Each query is one source view with its objects and a target view of a rendered sim episode (the
evaluation's queries, ego -> exo1 and back). Per query the three modes run back to back, their
order rotated from query to query so that none always runs first; the proposals of the target
view are timed apart (the graph proposer is part of every mode's time).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from corr_core.commands.bench_common import add_report_args, check_out_arg, host_facts, write_report
from corr_core.errors import ConfigError

MODES = ("images", "poses", "poses+depth")


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr bench crossview``."""
    p = tasks.add_parser(
        "crossview",
        help="one cross-view match: milliseconds from images alone and with the cameras' poses and depth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="PCC correspondence model (default: the shipped pcc_resnet18_l2_prior)")
    p.add_argument("--sim", type=Path, default=None,
                   help="`corr generate sim` episodes to take queries from (default: render --episodes here)")
    p.add_argument("--resolution", default="240p", help="--sim's frame folder resolution [240p]")
    p.add_argument("--episodes", type=int, default=2, help="episodes rendered when --sim is not given [2]")
    p.add_argument("--frames", type=int, default=10, help="frames per rendered episode [10]")
    p.add_argument("--every", type=int, default=5, help="every n-th instant of each episode [5]")
    p.add_argument("--warmup", type=int, default=2, help="untimed queries first [2]")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    add_report_args(p, "crossview")
    p.set_defaults(func=run_crossview)


def bench_crossview(checkpoint: Path, scenes: list[Any], every: int, warmup: int, threads: int,
                    log: Any = print) -> dict[str, Any]:
    """Times matches in every mode of :data:`MODES`; see ``corr bench crossview``.

    Returns:
        The report: ``settings``, ``host`` and ``results`` (per mode: seconds per match, median and
        90th percentile, and the median ratio to the images-only match of the same query), plus the
        proposer's own time.
    """
    import numpy as np
    import torch

    from corr_core.crossview.matcher import CrossViewMatcher
    from corr_core.evaluation.crossview_queries import SimPoses, queries
    from corr_core.proposals import build_proposer

    if threads > 0:
        torch.set_num_threads(threads)
    matcher = CrossViewMatcher.from_checkpoint(checkpoint, proposer=build_proposer("graph"))
    directions = [("ego", "exo1"), ("exo1", "ego")]
    # the same queries in every mode: with the poses and depth at hand, each mode takes what it uses
    items = list(queries(scenes, directions, every, poses=SimPoses(depth=True)))
    if len(items) <= warmup:
        raise ConfigError(f"{len(items)} queries in the episodes, not more than --warmup {warmup}: give more "
                          "episodes or frames, or a smaller --every")
    serial = build_proposer("graph", workers=1)  # the proposer's scales one after another: its baseline
    times: dict[str, list[float]] = {m: [] for m in (*MODES, "proposals", "proposals_one_thread")}
    objects = []
    for k, q in enumerate(items):
        geometry = {"images": None, "poses": replace(q.geometry, src_depth=None), "poses+depth": q.geometry}
        order = MODES[k % len(MODES):] + MODES[:k % len(MODES)]
        for mode in order:
            t0 = time.perf_counter()
            matcher.match(q.src_rgb, q.labels, q.tgt_rgb, geometry=geometry[mode])
            if k >= warmup:
                times[mode].append(time.perf_counter() - t0)
        pair = [("proposals", matcher.proposer), ("proposals_one_thread", serial)]
        for name, proposer in pair[::-1] if k % 2 else pair:  # neither always runs first
            t0 = time.perf_counter()
            proposer.propose(q.tgt_rgb)
            if k >= warmup:
                times[name].append(time.perf_counter() - t0)
        if k >= warmup:
            objects.append(len(q.ids))
    base = np.asarray(times["images"])
    results = {}
    for mode, values in times.items():
        v = np.asarray(values)
        results[mode] = {"seconds_median": float(np.median(v)), "seconds_p90": float(np.percentile(v, 90)),
                         "ratio_to_images": float(np.median(v / base)), "seconds": [round(x, 5) for x in values]}
        log(f"{mode:<12} {1e3 * results[mode]['seconds_median']:8.1f} ms median, "
            f"{1e3 * results[mode]['seconds_p90']:8.1f} ms p90, x{results[mode]['ratio_to_images']:.2f} of images only")
    h, w = items[0].src_rgb.shape[:2]
    return {
        "command": "corr bench crossview",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"checkpoint": str(checkpoint), "queries": len(base), "warmup": warmup,
                     "objects_per_query": float(statistics.mean(objects)), "frame": [h, w],
                     "threads": torch.get_num_threads(), "device": "cpu", "proposer": "graph",
                     "epipolar_sigma": matcher.epipolar_sigma},
        "host": {**{k: v for k, v in host_facts().items() if k != "machine"}, "torch": torch.__version__},
        "results": results,
    }


def crossview_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    s, host, r = report["settings"], report["host"], report["results"]
    lines = [
        f"# corr bench crossview ({report['created']})",
        "",
        f"{Path(s['checkpoint']).name}, {s['queries']} queries ({s['objects_per_query']:.1f} objects each, "
        f"{s['frame'][1]}x{s['frame'][0]}) after {s['warmup']} untimed, {s['threads']} threads, {s['device']}, "
        f"{s['proposer']} proposals; host: {host['processor']} ({host['cpu_count']} CPUs), torch {host['torch']}.",
        "",
        "| one match | median ms | p90 ms | time vs images only (same query) |",
        "|---|---|---|---|",
    ]
    for mode in MODES:
        lines.append(f"| {mode} | {1e3 * r[mode]['seconds_median']:.1f} | {1e3 * r[mode]['seconds_p90']:.1f} "
                     f"| {r[mode]['ratio_to_images']:.2f}x |")
    p = r["proposals"]
    lines.append(f"| (of which the target's proposals) | {1e3 * p['seconds_median']:.1f} | "
                 f"{1e3 * p['seconds_p90']:.1f} | {p['ratio_to_images']:.2f}x |")
    one = r.get("proposals_one_thread")
    if one is not None:  # reports written before the proposer used threads have no such row
        import numpy as np

        speed = float(np.median(np.asarray(one["seconds"]) / np.asarray(p["seconds"])))
        lines.append(f"| (the same proposals, scales on one thread) | {1e3 * one['seconds_median']:.1f} | "
                     f"{1e3 * one['seconds_p90']:.1f} | {one['ratio_to_images']:.2f}x; threads {speed:.2f}x faster |")
    return "\n".join(lines) + "\n"


def run_crossview(args: argparse.Namespace) -> int:
    """Runs ``corr bench crossview``; returns the exit code."""
    import tempfile

    from corr_core.crossview import SHIPPED_PCC
    from corr_core.methods.pcc.scenes import sim_scenes

    for name, low in (("episodes", 1), ("frames", 1), ("every", 1), ("warmup", 0), ("threads", 0)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    check_out_arg(args.out, args.overwrite)
    checkpoint = args.checkpoint or Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / f"{SHIPPED_PCC}.safetensors"
    with tempfile.TemporaryDirectory(prefix="corr-bench-xv-") as tmp:
        root = args.sim
        if root is None:
            from corr_core.data.sim import generate_dataset

            root = Path(tmp) / "sim"
            generate_dataset(root, seed=3000, num_episodes=args.episodes, num_frames=args.frames, bag=False,
                             hidden_per_camera=1)
        scenes = sim_scenes(root, resolution=args.resolution if args.sim is not None else "240p")
        report = bench_crossview(Path(checkpoint), scenes, args.every, args.warmup, args.threads)
    write_report(report, args.out, "crossview", crossview_table(report))
    return 0
