"""``corr eval compare`` (and its alias ``corr eval --compare``): runs side by side.

The statistics live in :mod:`corr_core.evaluation.compare`; this module only parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from corr_core.commands.common import add_overwrite_arg


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr eval compare``."""
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
    p.add_argument("--out", type=Path, default=None, metavar="FILE.md",
                   help="also write the table here (an existing file is refused unless --overwrite)")
    add_overwrite_arg(p, "an existing --out file")
    p.set_defaults(func=run_compare_command)


def compare(paths: list[Path], out: Path | None, overwrite: bool = False) -> int:
    """Prints the comparison table of ``paths`` (and writes it to ``out``); returns the exit code."""
    from corr_core.commands.common import check_output
    from corr_core.evaluation.compare import compare_runs, format_comparison

    if out is not None:
        check_output(out, overwrite)
    table = format_comparison(compare_runs(list(paths)))
    print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")
        print(f"table written to {out}")
    return 0


def run_compare_command(args: argparse.Namespace) -> int:
    """Runs ``corr eval compare``; returns the exit code."""
    return compare(args.runs, args.out, args.overwrite)
