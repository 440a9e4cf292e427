"""``corr pcc``: cross-view correspondence by Predictive Cycle Consistency (seed 000), by stage.

Sub-commands (a recipe under ``training/``, overrides ``key.path=value`` as for ``corr train``)::

    corr pcc pretrain   RECIPE --out RUN          colourisation pretraining -> RUN/pretrain/
    corr pcc pseudolabel RECIPE --out RUN [--model CKPT] --name pseudo_0
    corr pcc train      RECIPE --out RUN --pseudo RUN/pseudo_0 --init CKPT --name iter_1
    corr pcc score      RECIPE --out RUN --model RUN/iter_1/model   tuning scores; stores the existence threshold
    corr pcc iterate    RECIPE --out RUN          all of it: pretrain, then (pseudo-label, train, score) x iterations
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("corr.pcc")


def _setup(args: argparse.Namespace) -> tuple[dict[str, Any], Path, list[Any], str]:
    import torch

    from corr_core.config import load_training_config, save_run_config
    from corr_core.errors import ConfigError
    from corr_core.methods.pcc.pipeline import scenes_from_config

    cfg = load_training_config(args.config, args.overrides)
    if cfg["method"] != "pcc":
        raise ConfigError(f"{args.config}: method {cfg['method']!r}; `corr pcc` runs recipes of method pcc "
                          "(use `corr train` for the others)")
    out = Path(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(cfg.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"recipe asks for device {device!r} but CUDA is not available here; pass device=cpu")
    base = Path(args.config).resolve().parent.parent
    model = cfg.get("model", {})
    if model.get("encoder_init"):
        p = Path(model["encoder_init"])
        model["encoder_init"] = str(p if p.is_absolute() or p.with_suffix(".json").exists() else base / p)
    save_run_config(out, cfg, {"command": f"pcc {args.stage}"})
    scenes = scenes_from_config(cfg.get("data", {}), out / "cache", base)
    return cfg, out, scenes, device


def run_pretrain(args: argparse.Namespace) -> int:
    from corr_core.methods.pcc.pipeline import pretrain

    cfg, out, scenes, device = _setup(args)
    print(f"colouriser: {pretrain(cfg, out / 'pretrain', scenes, device, resume=not args.no_resume)}")
    return 0


def run_pseudolabel(args: argparse.Namespace) -> int:
    from corr_core.errors import ConfigError
    from corr_core.methods.pcc.pipeline import pseudolabel, view_store

    cfg, out, scenes, device = _setup(args)
    if args.model is None and cfg.get("pseudolabel", {}).get("first") != "colour_stats":
        raise ConfigError("corr pcc pseudolabel: give --model (a colouriser or a correspondence model), or set "
                          "pseudolabel.first=colour_stats for the weight-free first stage")
    model = None if args.model is None else Path(args.model)
    summary = pseudolabel(cfg, model, out / args.name, view_store(cfg, scenes, out), scenes, device)
    print(json.dumps(summary, indent=2))
    return 0


def run_train(args: argparse.Namespace) -> int:
    from corr_core.methods.pcc.pipeline import train_correspondence, view_store

    cfg, out, scenes, device = _setup(args)
    model = train_correspondence(cfg, [Path(p) for p in args.pseudo], Path(args.init), out / args.name,
                                 view_store(cfg, scenes, out), device, resume=not args.no_resume)
    print(f"correspondence model: {model}")
    return 0


def run_iterate(args: argparse.Namespace) -> int:
    from corr_core.evaluation.crossview import pcc_scorer
    from corr_core.methods.pcc.pipeline import iterate

    cfg, out, scenes, device = _setup(args)
    report = iterate(cfg, out, scenes, device, resume=not args.no_resume, score=pcc_scorer(cfg, out / "cache", device))
    print(json.dumps(report, indent=2))
    return 0


def run_score(args: argparse.Namespace) -> int:
    from corr_core.errors import ConfigError
    from corr_core.evaluation.crossview import pcc_scorer

    cfg, out, _, device = _setup(args)
    scorer = pcc_scorer(cfg, out / "cache", device)
    if scorer is None:
        raise ConfigError("corr pcc score: the recipe's score.episodes is 0 (no tuning episodes to score on)")
    print(json.dumps(scorer(Path(args.model), Path(args.model).parent.name), indent=2, default=float))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="PCC recipe, e.g. training/pcc_cpu.yaml")
    p.add_argument("overrides", nargs="*", help="recipe overrides such as pretrain.train.iters=100")
    p.add_argument("--out", required=True, help="run folder (stages write sub-folders; resumes what is there)")
    p.add_argument("--no-resume", action="store_true", help="start training stages from scratch")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pcc", help="cross-view correspondence (PCC): pretrain, pseudo-label, train, iterate",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    p = stages.add_parser("pretrain", help="cross-view colourisation pretraining")
    _common(p)
    p.set_defaults(func=run_pretrain)
    p = stages.add_parser("pseudolabel", help="cycle-consistent pseudo-labels from a colouriser or a PCC model")
    _common(p)
    p.add_argument("--model", default=None,
                   help="colouriser (RUN/pretrain/model.safetensors) or correspondence model; without it, the "
                        "weight-free colour statistics (recipes with pseudolabel.first: colour_stats)")
    p.add_argument("--name", default="pseudo_0", help="output sub-folder of --out (default pseudo_0)")
    p.set_defaults(func=run_pseudolabel)
    p = stages.add_parser("train", help="train the correspondence model on pseudo-labels")
    _common(p)
    p.add_argument("--pseudo", required=True, nargs="+",
                   help="pseudo-label folder (RUN/pseudo_N), or several, oldest first, merged")
    p.add_argument("--init", required=True, help="checkpoint to start from (colouriser or previous model)")
    p.add_argument("--name", default="iter_1", help="output sub-folder of --out (default iter_1)")
    p.set_defaults(func=run_train)
    p = stages.add_parser("score", help="score a correspondence model on the recipe's tuning episodes and store "
                                        "its calibrated existence threshold in the checkpoint")
    _common(p)
    p.add_argument("--model", required=True, help="correspondence model (RUN/iter_N/model.safetensors)")
    p.set_defaults(func=run_score)
    p = stages.add_parser("iterate", help="pretrain, then pseudo-label and train `iterations` times")
    _common(p)
    p.set_defaults(func=run_iterate)
