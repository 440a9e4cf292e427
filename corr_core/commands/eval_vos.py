"""``corr eval vos``: label propagation on a DAVIS-layout set, scored with the official J&F."""

from __future__ import annotations

import argparse
from pathlib import Path

from corr_core.commands.eval_common import VOS_PROPAGATION_FLAGS, add_task_args, output_folder, print_speed
from corr_core.errors import DataError


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval vos``."""
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
    source = add_task_args(vos, "vos", VOS_PROPAGATION_FLAGS, backend=True)
    source.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="DIR",
        help="score this predictions folder instead of tracking",
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


def run_vos_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval vos``; returns the exit code."""
    from corr_core.evaluation.vos import format_summary, run_vos, score_predictions

    missing = "empty" if args.allow_missing_objects else "raise"
    if args.predictions is not None:
        out = None if args.out is None else output_folder(args, "vos")
        metrics = score_predictions(
            args.davis,
            args.predictions,
            split=args.split,
            sequences=args.sequences,
            resolution=args.resolution,
            year=args.year,
            out_dir=out,
            missing_objects=missing,
            workers=args.workers,
        )
        print(format_summary(metrics))
        if out is not None:
            print(f"reports written to {out}")
        return 0

    from corr_core.commands.common import check_device
    from corr_core.commands.eval_common import tracker_factory
    from corr_core.data.davis import DavisDataset

    check_device(args.device)
    if not args.davis.is_dir():
        raise DataError(f"--davis {args.davis}: folder not found")
    out = output_folder(args, "vos")
    dataset = DavisDataset(args.davis, resolution=args.resolution, split=args.split, year=args.year)
    factory, info = tracker_factory(args, VOS_PROPAGATION_FLAGS)
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
    print_speed(metrics)
    print(f"results written to {out}")
    return 0
