"""``corr export onnx``: the feature network of a checkpoint as an ONNX file, checked with onnxruntime.

The ONNX file is a drop-in replacement for the checkpoint wherever one is taken (``corr eval
--checkpoint model.onnx``, ``corr_node`` ``checkpoint:=model.onnx``): it then runs on onnxruntime.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run_onnx(args: argparse.Namespace) -> int:
    from corr_core.api import export_checkpoint_onnx

    checkpoint = args.checkpoint
    if checkpoint is None and args.random_init is None:
        from corr_core.api import packaged_checkpoint

        checkpoint = packaged_checkpoint()
    report = export_checkpoint_onnx(checkpoint, args.out, size=(args.height, args.width), opset=args.opset,
                         atol=args.atol, random_init_seed=args.random_init)
    print(json.dumps(report, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
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
    src = onnx.add_mutually_exclusive_group()
    src.add_argument("checkpoint", nargs="?", type=Path, default=None,
                     help="corr checkpoint (default: the one shipped with the package)")
    src.add_argument("--random-init", type=int, default=None, metavar="SEED", help="a randomly initialised network")
    onnx.add_argument("--out", type=Path, required=True, help="destination .onnx file")
    onnx.add_argument("--height", type=int, default=240, help="trace/check height [240]")
    onnx.add_argument("--width", type=int, default=320, help="trace/check width [320]")
    onnx.add_argument("--opset", type=int, default=17, help="ONNX opset [17]")
    onnx.add_argument("--atol", type=float, default=1e-3, help="largest allowed |onnxruntime - torch| [1e-3]")
    onnx.set_defaults(func=run_onnx)
