"""``corr eval vos``: label propagation on a DAVIS-layout set, scored with the official J&F.

Examples::

    corr eval vos --davis data/davis2016-train --split dev480p --checkpoint runs/fc/model
    corr eval vos --davis data/davis2016-train --split dev480p --random-init 0
    corr eval vos --davis data/davis2016-train --split dev480p --predictions runs/eval/predictions
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

from corr_core.errors import ConfigError, DataError

PROPAGATION_FLAGS = ("topk", "context", "radius", "temperature")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr eval`` and its ``vos`` sub-command."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on benchmarks (DAVIS J&F)",
        description="Evaluate correspondence models with the field's official metrics.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
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
    source = vos.add_mutually_exclusive_group()
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
    source.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="score this predictions folder instead of tracking",
    )
    vos.add_argument("--out", type=Path, default=None, help="output folder (default runs/eval/vos-<time>)")
    vos.add_argument(
        "--topk", type=int, default=None, help="context positions kept per target position (default 10)"
    )
    vos.add_argument(
        "--context", type=int, default=None, help="preceding frames in the context memory (default 20)"
    )
    vos.add_argument(
        "--radius", type=float, default=None, help="spatial radius in feature cells (default 12)"
    )
    vos.add_argument("--temperature", type=float, default=None, help="softmax temperature (default 0.05)")
    vos.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
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
    vos.add_argument("--quiet", action="store_true", help="no per-sequence progress lines")
    vos.set_defaults(func=run_vos_command)


def _default_out() -> Path:
    return Path("runs") / "eval" / f"vos-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


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
    propagation = {k: getattr(args, k) for k in PROPAGATION_FLAGS if getattr(args, k) is not None}
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
