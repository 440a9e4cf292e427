"""``corr eval vip``: human-part propagation on VIP, scored with the pooled mIoU (UVC protocol)."""

from __future__ import annotations

import argparse
from pathlib import Path

from corr_core.commands.eval_common import (
    PROPAGATION_FLAGS,
    add_task_args,
    output_folder,
    print_speed,
    size_args,
)
from corr_core.errors import DataError


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval vip``."""
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
    add_task_args(p, "vip", PROPAGATION_FLAGS, default_note="the VIP protocol's, see above", backend=True)
    size_args(p, "560 560, as UVC")
    p.add_argument(
        "--no-first-frame",
        action="store_true",
        help="do not score the first (given) frame; the reference scores it",
    )
    p.set_defaults(func=run_vip_command)


def run_vip_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval vip``; returns the exit code."""
    from corr_core.commands.common import check_device
    from corr_core.commands.eval_common import chosen_size, tracker_factory
    from corr_core.evaluation.vip import VIP_PROPAGATION, VIP_SIZE, format_vip_summary, run_vip

    if not args.root.is_dir():
        raise DataError(f"--root {args.root}: folder not found")
    check_device(args.device)
    size = chosen_size(args, VIP_SIZE)
    out = output_folder(args, "vip")
    factory, info = tracker_factory(args, PROPAGATION_FLAGS, defaults=VIP_PROPAGATION)
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
    print_speed(metrics)
    print(f"results written to {out}")
    return 0
