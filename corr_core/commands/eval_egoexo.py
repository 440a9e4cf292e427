"""``corr eval egoexo``: scores ego<->exo correspondence predictions (EgoExo4D metrics)."""

from __future__ import annotations

import argparse
from pathlib import Path

from corr_core.commands.eval_common import add_out_args, output_folder


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval egoexo``."""
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
    add_out_args(p, "egoexo")
    p.add_argument(
        "--conf-thresh", type=float, default=0.5, help="existence threshold on the confidence (0.5)"
    )
    p.add_argument("--require-both", action="store_true", help="fail when one direction is missing")
    p.set_defaults(func=run_egoexo_command)


def run_egoexo_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval egoexo``; returns the exit code."""
    from corr_core.evaluation.egoexo import format_egoexo_summary, run_egoexo_pairs

    out = output_folder(args, "egoexo")
    metrics = run_egoexo_pairs(args.pairs, out, conf_thresh=args.conf_thresh, require_both=args.require_both)
    print(format_egoexo_summary(metrics))
    print(f"results written to {out}")
    return 0
