"""``corr eval``: run the field's evaluation protocols and compare runs.

Sub-commands, one module each (``corr_core.commands.eval_<task>``):

* ``vos``: label propagation on a DAVIS-layout set, scored with the official J&F;
* ``jhmdb``: pose-keypoint propagation on JHMDB, scored with PCK@0.1..0.5 (CRW/UVC protocol);
* ``vip``: human-part propagation on VIP, scored with the pooled 20-class mIoU (UVC protocol);
* ``egoexo``: scores ego<->exo correspondence predictions given as a pairs JSON;
* ``compare``: side-by-side table of the global metrics of several ``metrics.json`` files
  (``corr eval --compare A B`` is an alias); the statistics are :mod:`corr_core.evaluation.compare`.

The model and propagation flags are :mod:`corr_core.options`' (as in ``corr bench``, ``corr
export`` and ``corr_node``). An ``--out`` folder that holds an earlier run is refused unless
``--overwrite`` is given.

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
from typing import Any

from corr_core.commands import eval_compare, eval_crossview, eval_egoexo, eval_jhmdb, eval_vip, eval_vos
from corr_core.commands.eval_common import PROPAGATION_FLAGS, VOS_PROPAGATION_FLAGS
from corr_core.commands.eval_egoexo import run_egoexo_command
from corr_core.commands.eval_jhmdb import run_jhmdb_command
from corr_core.commands.eval_vip import run_vip_command
from corr_core.commands.eval_vos import run_vos_command

__all__ = [
    "PROPAGATION_FLAGS",
    "VOS_PROPAGATION_FLAGS",
    "add_parser",
    "run_compare_command",
    "run_egoexo_command",
    "run_jhmdb_command",
    "run_vip_command",
    "run_vos_command",
]

_LIBRARY = ("compare_runs", "format_comparison", "load_run_metrics", "paired_difference")


def __getattr__(name: str) -> Any:
    """The comparison functions, importable from here as before (they live in
    :mod:`corr_core.evaluation.compare`, loaded on first use so the parser stays light)."""
    if name in _LIBRARY:
        from corr_core.evaluation import compare

        return getattr(compare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


run_compare_command = eval_compare.run_compare_command


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr eval`` and its sub-commands (vos, jhmdb, vip, egoexo, crossview, compare)."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate on benchmarks (DAVIS J&F, JHMDB PCK, VIP mIoU, EgoExo, cross-view) and compare runs",
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
    for module in (eval_vos, eval_jhmdb, eval_vip, eval_egoexo, eval_compare):
        module.add_parser(tasks)
    eval_crossview.add_crossview_parser(tasks)


def _run_eval_root(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``corr eval --compare A B`` (alias); without it a task is required."""
    if args.compare:
        return eval_compare.compare(args.compare, None)
    parser.error("choose a task: vos, jhmdb, vip, egoexo, crossview or compare (or use --compare A B)")
    return 2  # not reached: parser.error exits
