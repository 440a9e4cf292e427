"""``corr export onnx``: the feature network of a checkpoint as an ONNX file, checked with onnxruntime;
``corr export tensorrt``: a TensorRT engine built from that ONNX file, cached for this host.

The ONNX file is a drop-in replacement for the checkpoint wherever one is taken (``corr eval
--checkpoint model.onnx``, ``corr_node`` ``checkpoint:=model.onnx``): it then runs on onnxruntime.
The network is chosen with :mod:`corr_core.options`' flags (``--checkpoint PATH | --random-init
[SEED]``, as in ``corr eval`` and ``corr bench``); the checkpoint may also be given as the first
word (``corr export onnx runs/fc/model --out runs/fc/model.onnx``). An existing output is refused
unless ``--overwrite`` is given.

``corr export tensorrt`` builds the engine ``corr_node`` (``backend: tensorrt``) uses: from the ONNX
file given, or from the checkpoint's ONNX export (cached), at ``--precision`` (fp16 by default;
int8 calibrated on ``--calibration-frames`` frames of a bag) for the ``--profile`` of input shapes.
Engines are cached under a key of the ONNX sha256, the TensorRT version, the GPU's compute
capability, the precision and the profile (:mod:`corr_core.export.tensorrt`); a cached engine is
reused, and rebuilt only with ``--rebuild``. ``--out`` also copies it (with its JSON) there::

    corr export tensorrt runs/fc/model --precision fp16
    corr export tensorrt model.onnx --precision int8 --calibration-bag rec/ --calibration-topics ego=/ego/image_raw
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


def calibration_batches(bag: Path, topics: dict[str, str], frames: int, shape: tuple[int, int, int, int],
                        slop_s: float = 0.05) -> list:
    """INT8 calibration input: up to ``frames`` camera images of a bag, spread over it, resized to the
    profile's ``opt`` size, as ``(B, 3, H, W)`` float32 batches in [0, 1] (B = ``shape[0]``).

    Raises:
        DataError: fewer frames in the bag than one batch (and the bag's own errors: a missing topic, ...).
    """
    import cv2
    import numpy as np

    from corr_core.data.bag import read_synced, to_rgb
    from corr_core.errors import DataError

    b, _, h, w = shape
    images = []
    with read_synced(bag, topics, slop_s=slop_s) as reader:
        for synced in reader:
            for image in synced.images.values():
                images.append(cv2.resize(to_rgb(image), (w, h), interpolation=cv2.INTER_AREA))
    if len(images) < b:
        raise DataError(f"--calibration-bag {bag}: {len(images)} frames on {sorted(topics.values())}, fewer than one "
                        f"batch of {b}")
    pick = np.linspace(0, len(images) - 1, min(frames, len(images))).round().astype(int)
    chosen = np.stack([images[i] for i in pick]).astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    return [chosen[i : i + b] for i in range(0, len(chosen) - b + 1, b)]


def run_tensorrt(args: argparse.Namespace) -> int:
    """Runs ``corr export tensorrt``; returns the exit code."""
    import shutil

    from corr_core.api import cached_checkpoint_onnx, packaged_checkpoint
    from corr_core.commands.bag import parse_topics
    from corr_core.commands.common import check_output
    from corr_core.errors import ConfigError
    from corr_core.export.cache import cache_root
    from corr_core.export.tensorrt import ShapeProfile, ensure_engine, host_tensorrt
    from corr_core.options import model_source

    profile = ShapeProfile.parse(args.profile)
    if args.out is not None:
        if args.out.suffix != ".engine":
            raise ConfigError(f"--out must name a .engine file, got {args.out}")
        check_output(args.out, args.overwrite)
    if args.precision == "int8" and args.calibration_bag is None:
        raise ConfigError("--precision int8 needs --calibration-bag BAG (and --calibration-topics cam=/topic,...)")
    version, capability = host_tensorrt(args.device)  # before any export: no TensorRT, no work
    if args.source is not None and args.source.suffix == ".onnx":
        onnx = args.source
    else:
        if args.source is not None:
            if args.checkpoint is not None or args.random_init is not None:
                raise ConfigError(f"give the checkpoint once: {args.source} or --checkpoint/--random-init")
            args.checkpoint = args.source
        source = model_source(args, default=packaged_checkpoint())
        onnx = cached_checkpoint_onnx(source.checkpoint, source.random_init_seed, cache_dir=args.cache_dir, log=print)
    calibration = None
    if args.calibration_bag is not None:
        topics = parse_topics(args.calibration_topics or [])
        calibration = lambda: calibration_batches(args.calibration_bag, topics, args.calibration_frames,  # noqa: E731
                                                  profile.opt)
    engine = ensure_engine(onnx, args.precision, profile, args.device, args.cache_dir, rebuild=args.rebuild,
                           calibration=calibration, log=print)
    info = json.loads(engine.with_suffix(".json").read_text())
    report = {"engine": str(engine), "cache": str(cache_root(args.cache_dir)), "tensorrt": version,
              "compute_capability": capability, **{k: info[k] for k in ("precision", "profile", "key", "onnx")}}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(engine, args.out)
        shutil.copyfile(engine.with_suffix(".json"), args.out.with_suffix(".json"))
        report["out"] = str(args.out)
    print(json.dumps(report, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``corr export`` and its formats ``onnx`` and ``tensorrt``."""
    p = sub.add_parser("export", help="export a checkpoint's feature network (ONNX, checked with onnxruntime; "
                       "TensorRT engines)",
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

    trt = kinds.add_parser(
        "tensorrt",
        help="a TensorRT engine built from the ONNX export, cached per ONNX, TensorRT, GPU, precision and shapes",
        description=(
            "Builds (or finds in the cache) the TensorRT engine of a checkpoint's ONNX export, or of an ONNX "
            "file, for this host's TensorRT version and GPU, at --precision, for the --profile of input shapes. "
            "A cached engine is reused; --rebuild builds it again. Needs the tensorrt package and a CUDA device."
        ),
    )
    trt.add_argument("source", nargs="?", type=Path, default=None, metavar="CHECKPOINT_OR_ONNX",
                     help="corr checkpoint or .onnx file (default: the checkpoint shipped with the package)")
    add_model_args(trt, default_help="the shipped checkpoint", device=False)
    trt.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"), default="fp16",
                     help="engine precision [fp16]; int8 needs --calibration-bag")
    trt.add_argument("--profile", default="1x3x64x64:2x3x240x320:4x3x1088x1920",
                     help="input shapes MIN:OPT:MAX, each BxCxHxW (B: cameras of a set; H, W: frames scaled by "
                     "input_scale) [1x3x64x64:2x3x240x320:4x3x1088x1920, the node's default]")
    trt.add_argument("--device", default="cuda", help="CUDA device [cuda]")
    trt.add_argument("--cache-dir", type=Path, default=None,
                     help="engine cache (default $CORR_CACHE_DIR, else ~/.cache/corr)")
    trt.add_argument("--rebuild", action="store_true", help="build again even when the cache holds the engine")
    trt.add_argument("--out", type=Path, default=None, help="also copy the engine (and its .json) to this .engine")
    add_overwrite_arg(trt, "an existing --out engine")
    trt.add_argument("--calibration-bag", type=Path, default=None, help="int8: rosbag2 whose frames calibrate")
    trt.add_argument("--calibration-topics", action="append", metavar="CAM=TOPIC[,CAM=TOPIC]",
                     help="int8: image topics of the calibration bag")
    trt.add_argument("--calibration-frames", type=int, default=64, help="int8: frames used [64]")
    trt.set_defaults(func=run_tensorrt)
