"""``corr train CONFIG [key=value ...]``: train a self-supervised method from a recipe.

The recipe is resolved by :func:`corr_core.config.load_training_config`: the packaged defaults
(``corr_core/configs/defaults.yaml``) under the recipe and its ``_base_`` chain, then the
overrides; unknown keys and values of the wrong type are errors that name the file or override.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError

log = logging.getLogger("corr.train")


def _resolve_path(p: str, config_path: Path) -> str:
    """``p`` as is when absolute or present in the working directory, else relative to the
    recipe's parent folder (the repository root for ``training/``)."""
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists():
        return str(path.resolve()) if path.exists() else str(path)
    return str((config_path.resolve().parent.parent / path).resolve())


def resolve_data_paths(dcfg: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """Makes relative data roots absolute: relative to the working directory when they exist
    there, else relative to the recipe's parent folder (the repository root for ``training/``)."""

    def fix(p: str) -> str:
        return _resolve_path(p, config_path)

    from corr_core.train.data import path_list

    out = dict(dcfg)
    davis = dcfg.get("davis") or []
    if not isinstance(davis, list) or not all(isinstance(d, dict) and d.get("root") for d in davis):
        raise ConfigError(f"data.davis must be a list of {{root, resolution, exclude, every}} entries, got {davis!r}")
    out["davis"] = [{**d, "root": fix(str(d["root"]))} for d in davis]
    out["folders"] = [fix(f) for f in path_list(dcfg, "folders")]
    out["videos"] = [fix(v) for v in path_list(dcfg, "videos")]
    return out


def train_from_config(cfg: dict[str, Any], out: Path, config_path: Path, resume: bool = True) -> Path:
    """Builds data, method and trainer from a config and trains; returns the model path.

    Args:
        cfg: a training config: resolved by :func:`~corr_core.config.load_training_config`, or a
            plain dict, which is checked and completed the same way here.
        out: the run folder.
        config_path: the recipe (relative data paths are resolved against its folder's parent).
        resume: continue from ``out/last.*`` when present.

    Raises:
        ConfigError: unknown keys, wrong types, or data that gives no images (each source named).
    """
    import torch

    from corr_core.config import check_training_config
    from corr_core.methods import BatchContext, build_method, method_spec
    from corr_core.train import distributed
    from corr_core.train.init import init_from_checkpoint
    from corr_core.train.trainer import Trainer

    cfg = check_training_config(cfg, str(config_path))
    spec = method_spec(cfg["method"])
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    device = str(cfg.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config asks for device {device!r} but CUDA is not available here; pass device=cpu")
    info = distributed.setup(device)  # torchrun: one process per GPU (or CPU worker)
    try:
        ctx = BatchContext(cfg, resolve_data_paths(cfg.get("data", {}), config_path), out / "cache",
                           distributed.per_rank_batch(int(cfg["train"]["batch_size"]), info),
                           seed + 1000003 * info.rank, render=True)
        if info.is_main:  # rank 0 renders the sim frames once; the others wait and read them
            batches = spec.batches(ctx)
        if info.enabled:
            torch.distributed.barrier()
        if not info.is_main:
            batches = spec.batches(dataclasses.replace(ctx, render=False))
        method = build_method(cfg["method"], **cfg.get("model", {}))
        if cfg.get("init"):
            init_from_checkpoint(method, _resolve_path(str(cfg["init"]), config_path))
        trainer = Trainer(method, batches, out, cfg, device=info.device, dist_info=info)
        if resume:
            trainer.resume()
        return trainer.fit()
    finally:
        distributed.teardown(info)


def run(args: argparse.Namespace) -> int:
    """Runs ``corr train``; returns the exit code."""
    import torch

    from corr_core.config import load_training_config

    overrides = list(args.overrides)
    cfg = load_training_config(args.config, overrides)
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    if args.bag:  # the bags join the recipe's data, as overrides: config.yaml of the run names them
        from corr_core.commands.train_bags import bag_overrides

        overrides += bag_overrides(cfg, args.bag, args.topics, out / "cache" / "bags")
        cfg = load_training_config(args.config, overrides)
    elif args.topics:
        raise ConfigError("--topics selects the cameras of --bag recordings; give --bag PATH too")
    if cfg["method"] == "pcc":  # a loop of stages, each on this trainer: `corr pcc iterate`
        from corr_core.commands.pcc import run_iterate

        return run_iterate(argparse.Namespace(config=args.config, overrides=overrides, out=str(out),
                                              no_resume=args.no_resume, threads=args.threads, stage="iterate"))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = train_from_config(cfg, out, Path(args.config), resume=not args.no_resume)
    print(f"trained model: {model}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a self-supervised method from a YAML recipe",
                       description="Train from a recipe under training/, resolved over the packaged defaults "
                                   "(corr_core/configs/defaults.yaml: every key a recipe may set). Overrides "
                                   "are key.path=value; one path may stand for a list of paths.")
    p.add_argument("config", help="recipe YAML, e.g. training/fc_cpu.yaml")
    p.add_argument("overrides", nargs="*", help="config overrides such as train.iters=100 optim.lr=3e-4")
    p.add_argument("--out", help="run directory (default runs/<recipe name>); resumes from its last.* if present")
    p.add_argument("--no-resume", action="store_true", help="start from scratch even if the run dir has a state")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--bag", action="append", default=[], metavar="PATH",
                   help="train on this rosbag2 recording too (repeatable): its cameras' frames join data.folders "
                        "(exported once into <out>/cache/bags), or data.bags for PCC")
    p.add_argument("--topics", action="append", default=None, metavar="CAM=/TOPIC[,CAM=/TOPIC]",
                   help="cameras of the --bag recordings, as corr bag export takes them (default: every "
                        "/<cam>/image_raw topic)")
    p.set_defaults(func=run)
