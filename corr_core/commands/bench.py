"""``corr bench``: speed and memory benchmarks.

Sub-commands, one module each:

* ``propagate`` (:mod:`corr_core.commands.bench_propagate`): frames per second and peak memory of
  label propagation, the windowed (``local``, default) implementation against the ``dense``
  baseline, each configuration in a fresh process;
* ``backends`` (:mod:`corr_core.commands.bench_backends`): frames per second of the feature
  network on PyTorch and on onnxruntime (its ONNX export), as a ratio to PyTorch measured in the
  same run;
* ``methods`` (:mod:`corr_core.commands.bench_methods`): the temporal methods' CPU recipes trained
  on one budget and compared (J&F on DAVIS dev and sim, speed, memory, feature rank);
* ``crossview`` (:mod:`corr_core.commands.bench_crossview`): milliseconds of one cross-view match
  from images alone and with the cameras' poses and depth, as a ratio to images alone.

The model and propagation flags are :mod:`corr_core.options`' (as in ``corr eval``); an existing
``--out`` report is refused unless ``--overwrite`` is given.

Examples::

    corr bench propagate
    corr bench propagate --resolutions 480p --kinds propagation --repeats 5 --out runs/bench/p.json
    corr bench propagate --device cuda --skip-dense
    corr bench backends --resolutions 240p,480p
    corr bench methods --train --out docs/bench/methods.json
    corr bench crossview --out docs/bench/crossview.json
"""

from __future__ import annotations

import argparse

from corr_core.commands import bench_backends, bench_crossview, bench_methods, bench_propagate
from corr_core.commands.bench_backends import backends_table, run_backends
from corr_core.commands.bench_common import RESOLUTIONS, parse_resolution
from corr_core.commands.bench_propagate import markdown_table, run_propagate

__all__ = ["RESOLUTIONS", "add_parser", "backends_table", "markdown_table", "parse_resolution", "run_backends",
           "run_propagate"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``corr bench`` and its sub-commands ``propagate`` and ``backends``."""
    parser = subparsers.add_parser(
        "bench",
        help="speed/memory benchmarks (label propagation: local vs dense; feature network: torch vs onnxruntime; "
             "the methods compared; a cross-view match with and without geometry)",
        description="Speed and memory benchmarks.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    bench_propagate.add_parser(tasks)
    bench_backends.add_parser(tasks)
    bench_methods.add_parser(tasks)
    bench_crossview.add_parser(tasks)
