"""``corr export onnx``: the feature network of a checkpoint as an ONNX file, checked with onnxruntime.

The ONNX file is a drop-in replacement for the checkpoint wherever one is taken (``corr eval
--checkpoint model.onnx``, ``corr_node`` ``checkpoint:=model.onnx``): it then runs on onnxruntime.
The network is chosen with :mod:`corr_core.options`' flags (``--checkpoint PATH | --random-init
[SEED]``, as in ``corr eval`` and ``corr bench``); the checkpoint may also be given as the first
word (``corr export onnx runs/fc/model --out runs/fc/model.onnx``). An existing output is refused
unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from corr_core.commands.common import add_overwrite_arg
from corr_core.options import add_model_args


def run_onnx(args: argparse.Namespace) -> int:
    """Runs ``corr export onnx``; returns the exit code."""
    from corr_core.api import export_checkpoint_onnx, packaged_checkpoint
    from corr_core.commands.common import check_output
    from corr_core.errors import ConfigError
    from corr_core.options import model_source

    if args.source is not None:
        if args.checkpoint is not None or args.random_init is not None:
            raise ConfigError(f"give the checkpoint once: {args.source} or --checkpoint/--random-init")
        args.checkpoint = args.source
    source = model_source(args, default=packaged_checkpoint())
    check_output(args.out, args.overwrite)
    report = export_checkpoint_onnx(source.checkpoint, args.out, size=(args.height, args.width), opset=args.opset,
                                    atol=args.atol, random_init_seed=source.random_init_seed)
    print(json.dumps(report, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``corr export`` and its format ``onnx``."""
    p = sub.add_parser("export", help="export a checkpoint's feature network (ONNX, checked with onnxruntime)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = kinds.add_parser(
        "onnx",
        help="ONNX with dynamic height/width; onnxruntime parity checked at two sizes",
        description=(
            "Writes OUT (.onnx) with the network's provenance in its metadata and OUT minus .onnx plus "
            ".export.json (parity report). The export is traced at HEIGHT x WIDTH and compared with "
            "PyTorch on random frames at that size and at one that is not a multiple of the stride; "
            "if they differ by more than --atol, nothing is written."
        ),
    )
    onnx.add_argument("source", nargs="?", type=Path, default=None, metavar="CHECKPOINT",
                      help="corr checkpoint (same as --checkpoint; default: the one shipped with the package)")
    add_model_args(onnx, default_help="the shipped checkpoint", device=False)
    onnx.add_argument("--out", type=Path, required=True, help="destination .onnx file")
    add_overwrite_arg(onnx, "an existing --out file")
    onnx.add_argument("--height", type=int, default=240, help="trace/check height [240]")
    onnx.add_argument("--width", type=int, default=320, help="trace/check width [320]")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset [17]")
    onnx.add_argument("--atol", type=float, default=1e-3, help="largest allowed |onnxruntime - torch| [1e-3]")
    onnx.set_defaults(func=run_onnx)
