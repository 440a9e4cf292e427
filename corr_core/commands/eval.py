"""``corr eval``: run the field's evaluation protocols and compare runs.

Sub-commands:

* ``vos``: label propagation on a DAVIS-layout set, scored with the official J&F;
* ``jhmdb``: pose-keypoint propagation on JHMDB, scored with PCK@0.1..0.5 (CRW/UVC protocol);
* ``vip``: human-part propagation on VIP, scored with the pooled 20-class mIoU (UVC protocol);
* ``egoexo``: scores ego<->exo correspondence predictions given as a pairs JSON;
* ``compare``: side-by-side table of the global metrics of several ``metrics.json`` files
  (``corr eval --compare A B`` is an alias).

Examples::

    corr eval vos --davis data/davis2016-train --split dev480p --checkpoint runs/fc/model
    corr eval vos --davis data/davis2016-train --split dev480p --random-init 0
    corr eval vos --davis data/davis2016-train --split dev480p --predictions runs/eval/predictions
    corr eval jhmdb --root data/JHMDB --filelist data/jhmdb_testlist.txt --checkpoint runs/fc/model
    corr eval vip --root data/VIP/VIP_Fine --split val_videos --checkpoint runs/fc/model
    corr eval egoexo --pairs runs/xview/pairs.json --out runs/eval/egoexo
    corr eval compare runs/eval/vos-a runs/eval/vos-b/metrics.json --out docs/results/compare.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError, DataError

PROPAGATION_FLAGS = ("topk", "context", "radius", "temperature")
#: ``corr eval vos`` also takes ``--input-scale`` (the keypoint tasks work on the feature grid).
VOS_PROPAGATION_FLAGS = (*PROPAGATION_FLAGS, "input_scale")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr eval`` and its sub-commands (vos, jhmdb, vip, egoexo, compare)."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on benchmarks (DAVIS J&F, JHMDB PCK, VIP mIoU, EgoExo) and compare runs",
        description="Evaluate correspondence models with the field's official metrics.",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        default=None,
        metavar="METRICS_JSON",
        help="alias of `corr eval compare`: table of the global metrics of these metrics.json files",
    )
    parser.set_defaults(func=lambda args: _run_eval_root(args, parser))
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=False)
    vos = tasks.add_parser(
        "vos",
        help="semi-supervised video object segmentation on a DAVIS-layout set",
        description=(
            "Propagate each sequence's first-frame annotation with a tracker built from a checkpoint "
            "(or a random initialisation), write palette-PNG predictions and overlays, and score them "
            "with the official DAVIS 2017 semi-supervised J&F. With --predictions, only score an "
            "existing predictions folder."
        ),
    )
    vos.add_argument(
        "--davis", required=True, type=Path, help="DAVIS-layout root (JPEGImages/, Annotations/, ImageSets/)"
    )
    vos.add_argument(
        "--split",
        default=None,
        help="split name (dev480p, train, val: ImageSets/<year>/<name>.txt) or a split file; default: all sequences",
    )
    vos.add_argument("--year", default="2016", help="ImageSets year for split names (default 2016)")
    vos.add_argument("--resolution", default="480p", help="frame/annotation resolution folder (default 480p)")
    vos.add_argument("--sequences", nargs="+", default=None, metavar="SEQ", help="only these sequences")
    from corr_core.propagation.crw import PropagationConfig

    source = _add_model_args(vos, PropagationConfig().to_dict())
    source.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="score this predictions folder instead of tracking",
    )
    vos.add_argument(
        "--input-scale",
        type=float,
        default=None,
        help=(
            "resize frames by this factor before the network (default 1); 2 tracks small objects "
            "better at about 4x the compute, labels still come back at the frame's size"
        ),
    )
    vos.add_argument("--no-overlays", action="store_true", help="do not write overlay JPEGs")
    vos.add_argument(
        "--allow-missing-objects",
        action="store_true",
        help=(
            "with --predictions: score objects never predicted as empty masks (the official evaluator "
            "refuses such folders); tracking runs always do"
        ),
    )
    vos.add_argument("--workers", type=int, default=None, help="scoring threads (default: up to 4)")
    vos.set_defaults(func=run_vos_command)
    _add_jhmdb_parser(tasks)
    _add_vip_parser(tasks)
    _add_egoexo_parser(tasks)
    _add_compare_parser(tasks)


def _add_model_args(p: argparse.ArgumentParser, defaults: dict[str, Any]) -> argparse._MutuallyExclusiveGroup:
    """--checkpoint/--random-init, propagation settings (``defaults`` shown), --device, --out, --quiet.

    Returns the checkpoint/random-init group, so a task can add another model source to it.
    """
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint", type=Path, default=None, help="corr checkpoint (.safetensors with its .json)"
    )
    source.add_argument(
        "--random-init",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="SEED",
        help="use a randomly initialised network (the papers' baseline), seed 0 unless given",
    )
    p.add_argument(
        "--topk",
        type=int,
        default=None,
        help=f"context positions kept per target position (default {defaults['topk']})",
    )
    p.add_argument(
        "--context",
        type=int,
        default=None,
        help=f"preceding frames in the context memory (default {defaults['context']})",
    )
    p.add_argument(
        "--radius",
        type=float,
        default=None,
        help=f"spatial radius in feature cells (default {defaults['radius']:g})",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help=f"softmax temperature (default {defaults['temperature']:g})",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/eval/<task>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no per-video progress lines")
    return source


def _add_size_args(p: argparse.ArgumentParser, default: tuple[int, int], source: str) -> None:
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=list(default),
        metavar=("H", "W"),
        help=f"frames are resized to H x W before tracking (default {default[0]} {default[1]}, as {source})",
    )
    p.add_argument("--native-size", action="store_true", help="track at the frames' own size (no resize)")


def _add_jhmdb_parser(tasks: argparse._SubParsersAction) -> None:
    from corr_core.evaluation.jhmdb import JHMDB_IMAGE_SIZE, JHMDB_PROPAGATION

    p = tasks.add_parser(
        "jhmdb",
        help="pose-keypoint propagation on JHMDB, scored with PCK",
        description=(
            "Propagate the 15 joints of each video's first frame (Gaussian label maps at feature "
            "resolution) with the CRW protocol, read them back (top-3 cells) and score PCK@0.1..0.5 "
            "as CRW/UVC's eval_pck.py. Settings default to SFC Table 0.A.1 (JHMDB): top-k 10, "
            "context 8, radius 3. Layout: ROOT/Frames/<class>/<video>/00001.png and "
            "ROOT/joint_positions/<class>/<video>/joint_positions.mat."
        ),
    )
    p.add_argument("--root", type=Path, default=None, help="JHMDB root (Frames/, joint_positions/)")
    p.add_argument(
        "--filelist",
        type=Path,
        default=None,
        help=(
            "CRW/UVC test list ('<frames folder> <joint_positions.mat>' per line; a relative list path "
            "is also looked up in --root; relative paths inside are taken from the list's folder, else "
            "from --root); default: every video under --root"
        ),
    )
    _add_model_args(p, JHMDB_PROPAGATION)
    _add_size_args(p, JHMDB_IMAGE_SIZE, "CRW")
    p.add_argument("--sigma", type=float, default=0.5, help="Gaussian width of the label maps in cells (0.5)")
    p.add_argument("--max-videos", type=int, default=None, help="only the first N videos (smoke runs)")
    p.set_defaults(func=run_jhmdb_command)


def _add_vip_parser(tasks: argparse._SubParsersAction) -> None:
    from corr_core.evaluation.vip import VIP_PROPAGATION, VIP_SIZE

    p = tasks.add_parser(
        "vip",
        help="human-part propagation on VIP, scored with the pooled mIoU",
        description=(
            "Propagate each video's first-frame part map (20 classes) with the tracker and score "
            "every annotated frame with one confusion histogram pooled over the data set, as "
            "UVC's eval_vip.py. Settings default to SFC Table 0.A.1 (VIP): top-k 10, context 8, "
            "radius 15. Layout (VIP_Fine): ROOT/Images/<video>/<frame>.jpg and "
            "ROOT/Annotations/Category_ids/<video>/<frame>.png."
        ),
    )
    p.add_argument("--root", type=Path, required=True, help="VIP root (Images/, Annotations/Category_ids/)")
    p.add_argument(
        "--split",
        default=None,
        help="file with one video per line (or a name in ROOT/lists/, e.g. val_videos); default: all videos",
    )
    p.add_argument("--videos", nargs="+", default=None, metavar="VIDEO", help="only these videos")
    _add_model_args(p, VIP_PROPAGATION)
    _add_size_args(p, VIP_SIZE, "UVC")
    p.add_argument(
        "--no-first-frame",
        action="store_true",
        help="do not score the first (given) frame; the reference scores it",
    )
    p.set_defaults(func=run_vip_command)


def _add_egoexo_parser(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "egoexo",
        help="score ego<->exo correspondence predictions (pairs JSON)",
        description=(
            "Score ego->exo and exo->ego object correspondences given in corr's pairs JSON (masks as "
            "PNG paths + existence confidence) with the EgoExo4D metrics: IoU, contour accuracy, "
            "location error and existence balanced accuracy, per direction."
        ),
    )
    p.add_argument(
        "--pairs", type=Path, required=True, help="pairs JSON ({'ego-exo': [...], 'exo-ego': [...]})"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/eval/egoexo-<time>)")
    p.add_argument(
        "--conf-thresh", type=float, default=0.5, help="existence threshold on the confidence (0.5)"
    )
    p.add_argument("--require-both", action="store_true", help="fail when one direction is missing")
    p.set_defaults(func=run_egoexo_command)


def _add_compare_parser(tasks: argparse._SubParsersAction) -> None:
    p = tasks.add_parser(
        "compare",
        help="side-by-side table of the global metrics of several runs",
        description=(
            "Print a markdown table of the 'global' metrics of metrics.json files written by any "
            "`corr eval` task: one column per run (labelled by its folder, or its checkpoint when "
            "folders clash), one row per metric, and a delta column (second minus first) for two runs; "
            "for two VOS runs on the same objects, also the per-object paired J&F difference with a "
            "95 % interval (bootstrap over sequences)."
        ),
    )
    p.add_argument(
        "runs", nargs="+", type=Path, metavar="METRICS_JSON", help="metrics.json files or run folders"
    )
    p.add_argument("--out", type=Path, default=None, metavar="FILE.md", help="also write the table here")
    p.set_defaults(func=run_compare_command)


def _default_out(task: str = "vos") -> Path:
    return Path("runs") / "eval" / f"{task}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here; use --device cpu")


def _make_tracker_factory(args: argparse.Namespace):
    from corr_core.api import build_tracker, packaged_checkpoint

    checkpoint = args.checkpoint
    if checkpoint is None and args.random_init is None:
        checkpoint = packaged_checkpoint()
        if checkpoint is None:
            raise ConfigError("give --checkpoint PATH, --random-init [SEED] or --predictions DIR")
    propagation = {k: getattr(args, k) for k in VOS_PROPAGATION_FLAGS if getattr(args, k, None) is not None}
    kwargs = {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "propagation": propagation or None,
        "device": args.device,
        "random_init_seed": args.random_init,
    }
    first = build_tracker(**kwargs)  # fail early on a bad checkpoint or settings
    state = {"fresh": first}

    def factory():
        tracker = state.pop("fresh", None)
        if tracker is not None:
            return tracker
        if hasattr(first, "reset"):
            first.reset()
            return first
        return build_tracker(**kwargs)

    info = {
        "checkpoint": kwargs["checkpoint"],
        "random_init_seed": args.random_init,
        "propagation": propagation,
        "device": args.device,
    }
    return factory, info


def run_vos_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval vos``; returns the exit code."""
    from corr_core.evaluation.vos import format_summary, run_vos, score_predictions

    missing = "empty" if args.allow_missing_objects else "raise"
    if args.predictions is not None:
        metrics = score_predictions(
            args.davis,
            args.predictions,
            split=args.split,
            sequences=args.sequences,
            resolution=args.resolution,
            year=args.year,
            out_dir=args.out,
            missing_objects=missing,
            workers=args.workers,
        )
        print(format_summary(metrics))
        if args.out is not None:
            print(f"reports written to {args.out}")
        return 0

    from corr_core.data.davis import DavisDataset

    _check_device(args.device)
    if not args.davis.is_dir():
        raise DataError(f"--davis {args.davis}: folder not found")
    dataset = DavisDataset(args.davis, resolution=args.resolution, split=args.split, year=args.year)
    factory, info = _make_tracker_factory(args)
    out = args.out or _default_out()
    metrics = run_vos(
        factory,
        dataset,
        out,
        sequences=args.sequences,
        overlays=not args.no_overlays,
        progress=not args.quiet,
        missing_objects="empty",  # a tracker that loses an object scores 0 on it, not a crash
        extra={"model": info, "davis": str(args.davis), "split": args.split, "resolution": args.resolution},
        workers=args.workers,
    )
    if args.quiet:
        print(format_summary(metrics))
    fps = metrics.get("tracking", {}).get("frames_per_second")
    if fps:
        print(f"tracking: {fps:.2f} frames/s over {metrics['tracking']['frames']} frames")
    print(f"results written to {out}")
    return 0


# --------------------------------------------------------------------------------------------
# corr eval (root), jhmdb, vip, egoexo
# --------------------------------------------------------------------------------------------


def _run_eval_root(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``corr eval --compare A B`` (alias); without it a task is required."""
    if args.compare:
        return _compare(args.compare, None)
    parser.error("choose a task: vos, jhmdb, vip, egoexo or compare (or use --compare A B)")
    return 2  # not reached: parser.error exits


def _fill_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> None:
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def _size(args: argparse.Namespace) -> tuple[int, int] | None:
    if args.native_size:
        return None
    h, w = args.size
    if h < 1 or w < 1:
        raise ConfigError(f"--size {h} {w}: height and width must be positive (or use --native-size)")
    return h, w


def _model_info(args: argparse.Namespace, checkpoint: Path | None) -> dict[str, Any]:
    return {
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "random_init_seed": args.random_init,
        "propagation": {k: getattr(args, k) for k in VOS_PROPAGATION_FLAGS if hasattr(args, k)},
        "device": args.device,
    }


def run_jhmdb_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval jhmdb``; returns the exit code."""
    from corr_core.api import load_feature_model, packaged_checkpoint
    from corr_core.evaluation.jhmdb import JHMDB_PROPAGATION, run_jhmdb

    if args.root is None and args.filelist is None:
        raise ConfigError("give --root (every video under it) and/or --filelist")
    if args.root is not None and not args.root.is_dir():
        raise DataError(f"--root {args.root}: folder not found")
    _check_device(args.device)
    size = _size(args)
    _fill_defaults(args, JHMDB_PROPAGATION)
    checkpoint = args.checkpoint
    if checkpoint is None and args.random_init is None:
        checkpoint = packaged_checkpoint()
        if checkpoint is None:
            raise ConfigError("give --checkpoint PATH or --random-init [SEED]")
    model, _ = load_feature_model(
        None if checkpoint is None else str(checkpoint), device=args.device, random_init_seed=args.random_init
    )
    out = args.out or _default_out("jhmdb")
    metrics = run_jhmdb(
        model,
        args.root,
        args.filelist,
        out,
        propagation={k: getattr(args, k) for k in PROPAGATION_FLAGS},
        image_size=size,
        sigma=args.sigma,
        device=args.device,
        max_videos=args.max_videos,
        progress=not args.quiet,
        extra={"model": _model_info(args, checkpoint)},
    )
    if args.quiet:
        from corr_core.evaluation.jhmdb import format_jhmdb_summary

        print(format_jhmdb_summary(metrics))
    _print_speed(metrics)
    print(f"results written to {out}")
    return 0


def run_vip_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval vip``; returns the exit code."""
    from corr_core.evaluation.vip import VIP_PROPAGATION, format_vip_summary, run_vip

    if not args.root.is_dir():
        raise DataError(f"--root {args.root}: folder not found")
    _check_device(args.device)
    size = _size(args)
    _fill_defaults(args, VIP_PROPAGATION)
    factory, info = _make_tracker_factory(args)
    out = args.out or _default_out("vip")
    metrics = run_vip(
        factory,
        args.root,
        out,
        split=args.split,
        videos=args.videos,
        size=size,
        score_first_frame=not args.no_first_frame,
        progress=not args.quiet,
        extra={"model": info},
    )
    if args.quiet:
        print(format_vip_summary(metrics))
    _print_speed(metrics)
    print(f"results written to {out}")
    return 0


def run_egoexo_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval egoexo``; returns the exit code."""
    from corr_core.evaluation.egoexo import format_egoexo_summary, run_egoexo_pairs

    out = args.out or _default_out("egoexo")
    metrics = run_egoexo_pairs(args.pairs, out, conf_thresh=args.conf_thresh, require_both=args.require_both)
    print(format_egoexo_summary(metrics))
    print(f"results written to {out}")
    return 0


def _print_speed(metrics: dict) -> None:
    fps = metrics.get("tracking", {}).get("frames_per_second")
    if fps:
        print(f"tracking: {fps:.2f} frames/s over {metrics['tracking']['frames']} frames")


# --------------------------------------------------------------------------------------------
# corr eval compare
# --------------------------------------------------------------------------------------------


def _is_value(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def load_run_metrics(path: str | Path) -> tuple[Path, dict]:
    """Reads a ``metrics.json`` written by any ``corr eval`` task (a run folder works too).

    Returns:
        ``(path of the file, its dictionary)``.

    Raises:
        DataError: missing file, invalid JSON, or not of the form ``{"global": {metric: number}}``
            (the message names the file).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(f"metrics file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc
    form = "expected an object with a 'global' dictionary of metric values, as `corr eval` writes"
    if not isinstance(data, dict) or not isinstance(data.get("global"), dict):
        raise DataError(f"{path}: not a corr metrics.json ({form})")
    values = {k: v for k, v in data["global"].items() if _is_value(v)}
    if not any(v is not None for v in values.values()):
        raise DataError(f"{path}: 'global' holds no numeric metric ({form})")
    return path, data


def _run_labels(runs: list[tuple[Path, dict]]) -> list[str]:
    """Folder names; where they clash, the checkpoint (or random-init seed); then a #index suffix."""
    labels = [p.resolve().parent.name or str(p.parent) for p, _ in runs]
    if len(set(labels)) == len(labels):
        return labels
    out = []
    for (_, data), label in zip(runs, labels, strict=True):
        if labels.count(label) > 1:
            model = data.get("model") if isinstance(data.get("model"), dict) else {}
            if model.get("checkpoint"):
                label = Path(str(model["checkpoint"])).name
            elif model.get("random_init_seed") is not None:
                label = f"random-init-{model['random_init_seed']}"
        out.append(label)
    counts: dict[str, int] = {}
    final = []
    for label in out:
        if out.count(label) > 1:
            counts[label] = counts.get(label, 0) + 1
            label = f"{label}#{counts[label]}"
        final.append(label)
    return final


def compare_runs(paths: list[str | Path]) -> dict[str, Any]:
    """Collects the global metrics of several runs for a side-by-side table.

    Returns:
        ``{"labels": [...], "paths": [...], "protocols": [...], "metrics": [names in order of first
        appearance], "values": [{metric: value or None}, ...] (one per run), "delta": {metric: b - a}
        (two runs only, where both are numbers), "paired": :func:`paired_difference` of two VOS
        runs on the same objects, else None}``.

    Raises:
        ConfigError: fewer than two runs.
        DataError: a file that is missing or not a metrics.json (names the file).
    """
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two metrics.json files, got {len(paths)}")
    runs = [load_run_metrics(p) for p in paths]
    names: list[str] = []
    values = []
    for _, data in runs:
        vals = {k: v for k, v in data["global"].items() if _is_value(v)}
        names.extend(k for k in vals if k not in names)
        values.append(vals)
    delta: dict[str, float] = {}
    paired = None
    if len(runs) == 2:
        for k in names:
            a, b = values[0].get(k), values[1].get(k)
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                delta[k] = float(b) - float(a)
        paired = paired_difference(runs[0][1], runs[1][1])
    return {
        "labels": _run_labels(runs),
        "paths": [str(p) for p, _ in runs],
        "protocols": [data.get("protocol") for _, data in runs],
        "metrics": names,
        "values": values,
        "delta": delta,
        "paired": paired,
    }


def paired_difference(
    a: dict, b: dict, metric: str = "J&F-Mean", n_boot: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """Per-object paired difference ``b - a`` of two VOS runs on the same objects.

    Objects are matched by ``(sequence, object)`` in the runs' ``per_object`` lists. The 95 %
    interval is a cluster bootstrap over *sequences* (objects of one video are not independent):
    sequences are drawn with replacement ``n_boot`` times and the mean difference over their
    objects is recomputed.

    Returns:
        ``{"metric", "objects", "sequences", "mean", "ci95": [lo, hi], "b_better", "a_better",
        "ties"}``; None when the runs share no object (e.g. not VOS runs).
    """
    import numpy as np

    def table(data: dict) -> dict[tuple[str, str], float]:
        rows = data.get("per_object") if isinstance(data.get("per_object"), list) else []
        out = {}
        for r in rows:
            if isinstance(r, dict) and _is_value(r.get(metric)) and r.get(metric) is not None:
                out[(str(r.get("sequence")), str(r.get("object")))] = float(r[metric])
        return out

    ta, tb = table(a), table(b)
    keys = sorted(set(ta) & set(tb))
    if not keys:
        return None
    diff = np.array([tb[k] - ta[k] for k in keys])
    seqs = sorted({k[0] for k in keys})
    index = {s: i for i, s in enumerate(seqs)}
    seq_of = np.array([index[k[0]] for k in keys])
    sums = np.bincount(seq_of, weights=diff, minlength=len(seqs))
    counts = np.bincount(seq_of, minlength=len(seqs)).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(seqs), size=(int(n_boot), len(seqs)))
    boot = sums[draws].sum(1) / counts[draws].sum(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {
        "metric": metric,
        "objects": len(keys),
        "sequences": len(seqs),
        "mean": float(diff.mean()),
        "ci95": [float(lo), float(hi)],
        "b_better": int((diff > 0).sum()),
        "a_better": int((diff < 0).sum()),
        "ties": int((diff == 0).sum()),
    }


def _cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4f}"


def format_comparison(result: dict[str, Any]) -> str:
    """Markdown table of :func:`compare_runs`' result (plus a note when protocols differ)."""
    labels = result["labels"]
    two = len(labels) == 2
    header = ["metric", *labels] + ([f"delta ({labels[1]} - {labels[0]})"] if two else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for k in result["metrics"]:
        row = [k] + [_cell(v.get(k)) if k in v else "-" for v in result["values"]]
        if two:
            row.append(f"{result['delta'][k]:+.4f}" if k in result["delta"] else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.extend(f"- {label}: {path}" for label, path in zip(labels, result["paths"], strict=True))
    paired = result.get("paired")
    if paired:
        lines.append("")
        lines.append(
            f"paired over {paired['objects']} objects in {paired['sequences']} sequences: "
            f"{labels[1]} - {labels[0]} {paired['metric']} = {paired['mean']:+.4f} "
            f"(95 % interval, bootstrap over sequences: {paired['ci95'][0]:+.4f} .. {paired['ci95'][1]:+.4f}); "
            f"{labels[1]} better on {paired['b_better']}, {labels[0]} on {paired['a_better']}, ties {paired['ties']}"
        )
    protocols = {p for p in result["protocols"] if p}
    if len(protocols) > 1:
        lines.append("")
        lines.append("note: the runs come from different protocols: " + "; ".join(sorted(protocols)))
    return "\n".join(lines)


def _compare(paths: list[Path], out: Path | None) -> int:
    table = format_comparison(compare_runs(list(paths)))
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")
        print(f"table written to {out}")
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval compare``; returns the exit code."""
    return _compare(args.runs, args.out)
