"""``corr bench crossview-live``: the cross-view mode under a live camera rate, with matches in the
worker (``corr_node``'s default) and in the background (``crossview_background``), in the same run.

Sim episodes are replayed through the node's :class:`~corr_core.runtime.processing.SetProcessor`
(no ROS: the worker's own code) with the ego masks of frame 0 only: a synchronised set arrives
every ``1 / --rate`` s; the worker takes the sets in order, and a set that waited while
``--queue`` newer ones arrived is dropped, as the node's bounded synchroniser queue drops it.
Reported per mode: sets processed and dropped, the worker's time per set (median, p95, max),
latency from a set's arrival to its labels (median, p95, max), exo1 J&F over the episodes (a
dropped set scores as a frame without labels), pixels given to objects exo1 never shows, and each
figure's ratio to the worker mode's.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from corr_core.commands.bench_common import add_report_args, check_out_arg, host_facts, write_report
from corr_core.errors import ConfigError

MODES = ("worker", "background")
CAMERAS = ("ego", "exo1")


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr bench crossview-live``."""
    p = tasks.add_parser(
        "crossview-live",
        help="the cross-view mode at a live camera rate: matches in the worker vs in the background",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sim", type=Path, default=None,
                   help="`corr generate sim` episodes (default: render --episodes here, one object hidden per camera)")
    p.add_argument("--resolution", default="240p", help="--sim's frame folder resolution [240p]")
    p.add_argument("--episodes", type=int, default=3, help="episodes (rendered, or the first of --sim) [3]")
    p.add_argument("--frames", type=int, default=30, help="frames per rendered episode [30]")
    p.add_argument("--rate", type=float, default=10.0, help="synchronised sets per second [10]")
    p.add_argument("--queue", type=int, default=2, help="sets that may wait for the worker (queue_size) [2]")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    add_report_args(p, "crossview-live")
    p.set_defaults(func=run_live)


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = info


def replay(scene: Any, background: bool, rate: float, queue: int) -> dict[str, Any]:
    """One episode through a :class:`SetProcessor` at ``rate`` sets/s (see the module docstring)."""
    import numpy as np

    from corr_core.api import build_camera_trackers, packaged_checkpoint
    from corr_core.crossview import SHIPPED_PCC
    from corr_core.crossview.multicam import build_link
    from corr_core.data.labels import read_label_png
    from corr_core.evaluation.recorded import score_shown_objects
    from corr_core.methods.pcc.scenes import read_rgb
    from corr_core.runtime.drops import DropCounter
    from corr_core.runtime.frames import SizeGate
    from corr_core.runtime.processing import Frame, SetProcessor
    from corr_core.sync import MaskAnchors, SyncedSet

    checkpoint = Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / f"{SHIPPED_PCC}.safetensors"
    trackers, _ = build_camera_trackers(list(CAMERAS), packaged_checkpoint(), {"topk": 10, "context": 20, "radius": 12.0})
    link = build_link(checkpoint, list(CAMERAS), "ego")
    log = _Log()
    proc = SetProcessor(trackers, MaskAnchors(), {c: SizeGate() for c in CAMERAS}, DropCounter(log), log,
                        link=link, background=background)
    frames = [{c: read_rgb(scene.frames[c][t]) for c in CAMERAS} for t in range(scene.num_frames)]
    proc.anchors.put("ego", 0, read_label_png(scene.labels["ego"][0]))
    period, start = 1.0 / rate, time.monotonic()
    labels: dict[int, np.ndarray] = {}
    worker, latency, dropped, matched = [], [], [], 0
    t = 0
    while t < len(frames):
        now = time.monotonic()
        arrived = int((now - start) // period)  # the newest set that has arrived
        if arrived < t:  # ahead of the cameras: wait for the set
            time.sleep(start + t * period - now)
            continue
        if arrived - t > queue:  # waited while more than `queue` newer sets came: dropped
            dropped.append(t)
            t += 1
            continue
        synced = SyncedSet(t, {c: Frame(SimpleNamespace(frame_id=c), frames[t][c], start + t * period) for c in CAMERAS},
                           dict.fromkeys(CAMERAS, t))
        t0 = time.monotonic()
        out = proc.process(synced)
        worker.append(time.monotonic() - t0)
        latency.append(time.monotonic() - (start + t * period))
        matched += bool(out.summary["cameras"].get("exo1", {}).get("matched"))
        if "exo1" in out.outputs:
            labels[t] = out.outputs["exo1"].labels
        t += 1
    proc.close()
    gt = np.stack([read_label_png(scene.labels["exo1"][i]) for i in range(len(frames))])
    pred = np.stack([labels.get(i, np.zeros_like(gt[0])) for i in range(len(frames))])
    score, phantom = score_shown_objects(gt, pred, name=f"exo1/{scene.name}")
    return {"episode": scene.name, "jf": score["J&F-Mean"], "phantom_px": phantom, "matches": matched,
            "processed": len(worker), "dropped": len(dropped), "worker_s": worker, "latency_s": latency,
            "without_labels": len(frames) - len(labels)}


def bench_live(scenes: list[Any], rate: float, queue: int, threads: int, log: Any = print) -> dict[str, Any]:
    """Replays every scene in both modes (alternating which goes first); see the module docstring."""
    import numpy as np
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for k, scene in enumerate(scenes):
        for mode in MODES[::-1] if k % 2 else MODES:
            row = replay(scene, mode == "background", rate, queue)
            runs[mode].append(row)
            log(f"{scene.name} {mode:<10} exo1 J&F {row['jf']:.3f}, {row['processed']} sets, {row['dropped']} dropped, "
                f"worker max {1e3 * max(row['worker_s']):.0f} ms, latency max {1e3 * max(row['latency_s']):.0f} ms")
    results: dict[str, Any] = {}
    for mode, rows in runs.items():
        w = np.concatenate([r["worker_s"] for r in rows])
        lat = np.concatenate([r["latency_s"] for r in rows])
        results[mode] = {
            "exo1_jf": float(np.mean([r["jf"] for r in rows])), "processed": int(sum(r["processed"] for r in rows)),
            "dropped": int(sum(r["dropped"] for r in rows)), "matches": int(sum(r["matches"] for r in rows)),
            "phantom_px": int(sum(r["phantom_px"] for r in rows)),
            "exo1_frames_without_labels": int(sum(r["without_labels"] for r in rows)),
            **{f"worker_{q}_s": float(f(w)) for q, f in _STATS.items()},
            **{f"latency_{q}_s": float(f(lat)) for q, f in _STATS.items()},
            "episodes": [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows],
        }
    base = results["worker"]
    for mode in MODES:
        results[mode]["ratio_to_worker"] = {
            k: (results[mode][k] / base[k] if base[k] else None)
            for k in ("worker_p95_s", "worker_max_s", "latency_p95_s", "latency_max_s", "exo1_jf")}
    from corr_core.methods.pcc.scenes import read_rgb

    h, w_ = read_rgb(scenes[0].frames["ego"][0]).shape[:2]
    return {
        "command": "corr bench crossview-live",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"episodes": len(scenes), "rate": rate, "queue": queue, "threads": torch.get_num_threads(),
                     "device": "cpu", "proposer": "graph", "frame": [int(h), int(w_)]},
        "host": {**{k: v for k, v in host_facts().items() if k != "machine"}, "torch": torch.__version__},
        "results": results,
    }


def _p95(v: Any) -> float:
    import numpy as np

    return float(np.percentile(v, 95))


def _median(v: Any) -> float:
    import numpy as np

    return float(np.median(v))


_STATS = {"median": _median, "p95": _p95, "max": max}


def live_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    s, host, r = report["settings"], report["host"], report["results"]
    lines = [
        f"# corr bench crossview-live ({report['created']})",
        "",
        f"{s['episodes']} sim episodes, ego masks on frame 0 only, sets at {s['rate']:g}/s, queue {s['queue']}, "
        f"{s['threads']} threads, {s['device']}; host: {host['processor']} ({host['cpu_count']} CPUs), torch {host['torch']}.",
        "",
        "| matches run | worker ms per set: median / p95 / max | latency ms: median / p95 / max | sets processed / dropped "
        "| exo1 J&F | matches | px on objects exo1 never shows |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        m, ratio = r[mode], r[mode]["ratio_to_worker"]
        lines.append(
            f"| {'in the worker' if mode == 'worker' else 'in the background'} | "
            f"{1e3 * m['worker_median_s']:.0f} / {1e3 * m['worker_p95_s']:.0f} / {1e3 * m['worker_max_s']:.0f} "
            f"(max {ratio['worker_max_s']:.2f}x) | "
            f"{1e3 * m['latency_median_s']:.0f} / {1e3 * m['latency_p95_s']:.0f} / {1e3 * m['latency_max_s']:.0f} "
            f"(p95 {ratio['latency_p95_s']:.2f}x) | {m['processed']} / {m['dropped']} | {m['exo1_jf']:.3f} | "
            f"{m['matches']} | {m['phantom_px']} |")
    return "\n".join(lines) + "\n"


def run_live(args: argparse.Namespace) -> int:
    """Runs ``corr bench crossview-live``; returns the exit code."""
    import tempfile

    from corr_core.methods.pcc.scenes import sim_scenes

    for name, low in (("episodes", 1), ("frames", 2), ("queue", 0), ("threads", 0)):
        if getattr(args, name) < low:
            raise ConfigError(f"--{name} must be >= {low}, got {getattr(args, name)}")
    if not args.rate > 0:
        raise ConfigError(f"--rate must be > 0 sets per second, got {args.rate}")
    check_out_arg(args.out, args.overwrite)
    with tempfile.TemporaryDirectory(prefix="corr-bench-live-") as tmp:
        root = args.sim
        if root is None:
            from corr_core.data.sim import generate_dataset

            root = Path(tmp) / "sim"
            generate_dataset(root, seed=3000, num_episodes=args.episodes, num_frames=args.frames, bag=False,
                             hidden_per_camera=1)
        scenes = sim_scenes(root, resolution=args.resolution if args.sim is not None else "240p")[: args.episodes]
        report = bench_live(scenes, args.rate, args.queue, args.threads)
    write_report(report, args.out, "crossview-live", live_table(report))
    return 0
