"""``corr eval jhmdb``: pose-keypoint propagation on JHMDB, scored with PCK (CRW/UVC protocol)."""

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
from corr_core.errors import ConfigError, DataError


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval jhmdb``."""
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
    add_task_args(p, "jhmdb", PROPAGATION_FLAGS, default_note="the JHMDB protocol's, see above")
    size_args(p, "320 320, as CRW")
    p.add_argument("--sigma", type=float, default=0.5, help="Gaussian width of the label maps in cells (0.5)")
    p.add_argument("--max-videos", type=int, default=None, help="only the first N videos (smoke runs)")
    p.set_defaults(func=run_jhmdb_command)


def run_jhmdb_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval jhmdb``; returns the exit code."""
    from corr_core.api import load_model_source
    from corr_core.commands.common import check_device
    from corr_core.commands.eval_common import chosen_model, chosen_size, model_info
    from corr_core.evaluation.jhmdb import (
        JHMDB_IMAGE_SIZE,
        JHMDB_PROPAGATION,
        format_jhmdb_summary,
        run_jhmdb,
    )
    from corr_core.options import propagation_overrides

    if args.root is None and args.filelist is None:
        raise ConfigError("give --root (every video under it) and/or --filelist")
    if args.root is not None and not args.root.is_dir():
        raise DataError(f"--root {args.root}: folder not found")
    check_device(args.device)
    size = chosen_size(args, JHMDB_IMAGE_SIZE)
    propagation = {**JHMDB_PROPAGATION, **propagation_overrides(args, PROPAGATION_FLAGS)}
    source = chosen_model(args)
    out = output_folder(args, "jhmdb")
    model, _ = load_model_source(source)
    metrics = run_jhmdb(
        model,
        args.root,
        args.filelist,
        out,
        propagation=propagation,
        image_size=size,
        sigma=args.sigma,
        device=source.device,
        max_videos=args.max_videos,
        progress=not args.quiet,
        extra={"model": model_info(source, propagation)},
    )
    if args.quiet:
        print(format_jhmdb_summary(metrics))
    print_speed(metrics)
    print(f"results written to {out}")
    return 0
