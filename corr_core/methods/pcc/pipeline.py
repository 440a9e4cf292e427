"""PCC's stages from a recipe: pretrain, pseudo-label, train, and the iteration loop.

A recipe (``training/pcc_cpu.yaml``) has the sections ``model`` (architecture, encoder start),
``data`` (scenes), ``pretrain`` and ``correspond`` (each with the trainer's ``train`` and
``optim``), ``pseudolabel`` (pairs, proposer, thresholds) and ``iterations``. A run folder::

    pretrain/            colourisation run (trainer files; model.safetensors is the colouriser)
    proposals/           the proposals of every view (made once, shared by every iteration)
    pseudo_0/            pseudo-labels from the colouriser's heatmaps
    iter_1/              correspondence model trained on pseudo_0
    pseudo_1/            pseudo-labels from iter_1's predictions (IoU)
    iter_2/ ...
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError
from corr_core.methods.pcc.scenes import Scene, bag_scenes, davis_scenes, sim_scenes

log = logging.getLogger(__name__)


def _path(p: str, base: Path | None) -> Path:
    path = Path(p).expanduser()
    if path.is_absolute() or path.exists() or base is None:
        return path
    return (base / path).resolve()


def scenes_from_config(dcfg: dict[str, Any], cache_dir: Path, base: Path | None = None,
                       render: bool = True) -> list[Scene]:
    """The scenes of a recipe's ``data`` section.

    Keys: ``sim`` (``{episodes, frames, objects, size, seed}``: rendered into ``cache_dir/sim``),
    ``sim_folders`` (existing ``corr generate sim`` outputs), ``davis`` (``{root, resolution,
    exclude, every}`` entries; one-camera scenes), ``bags`` (``{path, topics, every}`` entries).
    Relative paths are taken from the working directory when they exist there, else from ``base``.

    Raises:
        ConfigError: no scene at all. DataError: a source that cannot be read (named).
    """
    scenes: list[Scene] = []
    sim = dcfg.get("sim") or {}
    if int(sim.get("episodes", 0) or 0) > 0:
        from corr_core.data.sim import generate_dataset

        sim_dir = cache_dir / "sim"
        w, h = sim.get("size", [320, 240])
        if render:
            generate_dataset(sim_dir, seed=int(sim.get("seed", 1000)), num_episodes=int(sim["episodes"]),
                             num_frames=int(sim.get("frames", 30)), num_objects=int(sim.get("objects", 5)),
                             size=(int(w), int(h)), bag=False, reuse=True)
        scenes += sim_scenes(sim_dir, resolution=f"{int(h)}p")
    for folder in _as_list(dcfg.get("sim_folders"), "data.sim_folders"):
        scenes += sim_scenes(_path(folder, base), resolution=str(dcfg.get("resolution", "240p")))
    for entry in dcfg.get("davis") or []:
        scenes += davis_scenes(_path(entry["root"], base), entry.get("resolution", "240p"),
                               entry.get("exclude", []), int(entry.get("every", 1)))
    for entry in dcfg.get("bags") or []:
        scenes += bag_scenes(_path(entry["path"], base), dict(entry["topics"]), cache_dir / "bags",
                             float(entry.get("slop", 0.05)), int(entry.get("every", 1)))
    if not scenes:
        raise ConfigError("PCC: the data section gives no scene (set data.sim.episodes, data.sim_folders, "
                          "data.davis or data.bags)")
    return scenes


def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{key} must be a path or a list of paths, got {value!r}")


def stage_config(cfg: dict[str, Any], stage: str) -> dict[str, Any]:
    """The trainer's view of one stage: the recipe with ``train``/``optim`` of ``cfg[stage]``."""
    if stage not in cfg or "train" not in cfg[stage]:
        raise ConfigError(f"PCC recipe: no {stage}.train section")
    out = copy.deepcopy(cfg)
    out["train"] = dict(cfg[stage]["train"])
    out["optim"] = dict(cfg[stage].get("optim", {}))
    out["stage"] = stage
    return out


def pretrain(cfg: dict[str, Any], out: Path, scenes: list[Scene], device: str = "cpu", resume: bool = True) -> Path:
    """Stage 1: colourisation pretraining into ``out``; returns the colouriser checkpoint."""
    import torch

    from corr_core.methods.pcc.colorize import ColourBatches, ColourizeMethod
    from corr_core.methods.pcc.scenes import PairSampler
    from corr_core.train.trainer import Trainer

    scfg = stage_config(cfg, "pretrain")
    dcfg, seed = cfg.get("data", {}), int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    sampler = PairSampler(scenes, float(dcfg.get("cross_view", 0.7)), tuple(dcfg.get("gap", (5, 15))), seed=seed)
    batches = ColourBatches(sampler, int(scfg["train"]["batch_size"]), tuple(dcfg.get("size", (240, 320))),
                            bool(dcfg.get("jitter", True)), seed=seed + 1, synthetic=float(dcfg.get("synthetic", 0.0)))
    mcfg = cfg.get("model", {})
    method = ColourizeMethod(mcfg.get("arch", "pcc_resnet18_l2"), mcfg.get("encoder_init"),
                             bool(mcfg.get("freeze_encoder", False)), float(mcfg.get("contrast_weight", 0.0)))
    trainer = Trainer(method, batches, out, scfg, device=device)
    if resume:
        trainer.resume()
    return trainer.fit()


def view_store(cfg: dict[str, Any], scenes: list[Scene], run_dir: Path, proposer: Any = None) -> Any:
    """The views of ``scenes`` at the recipe's size with proposals cached in ``run_dir/proposals``."""
    from corr_core.methods.pcc.pseudolabel import ViewStore
    from corr_core.proposals import build_proposer

    if proposer is None:
        pcfg = dict(cfg.get("pseudolabel", {}).get("proposer") or {"name": "graph"})
        proposer = build_proposer(pcfg.pop("name", "graph"), **pcfg)
    return ViewStore(scenes, tuple(cfg.get("data", {}).get("size", (240, 320))), proposer, run_dir / "proposals")


FIRST_STAGE = ("colouriser", "colour_stats")


def pseudolabel(cfg: dict[str, Any], model_path: Path | None, out: Path, store: Any, scenes: list[Scene],
                device: str = "cpu") -> dict[str, Any]:
    """Stage 2 (and the iterations): pseudo-labels into ``out``; returns the summary.

    The similarity comes from ``model_path``: a colouriser (``pcc_colorize``: recolouring heatmaps,
    seed 000's iteration 0) or a correspondence model (``pcc_correspond``: IoU of its predicted
    masks). ``model_path=None`` uses the weight-free colour statistics of :mod:`.appearance`
    (``pseudolabel.first: colour_stats``). Thresholds: ``min_sim_colour``, ``min_sim_stats`` and
    ``min_sim_iou`` per kind, ``min_margin`` (distinctiveness) for all.
    """
    from corr_core.methods.pcc.pseudolabel import label_pairs, pairs_for_labelling

    plc = cfg.get("pseudolabel", {})
    if model_path is None:
        from corr_core.methods.pcc.appearance import ColourStatsSimilarity

        similarity, what = ColourStatsSimilarity().similarity, "colour_stats"
        min_sim = float(plc.get("min_sim_stats", 0.0))
    else:
        from corr_core.methods.pcc import load_pcc_model
        from corr_core.methods.pcc.heatmaps import ColourHeatmaps, ModelHeatmaps

        model, meta = load_pcc_model(model_path, device)
        what = str(meta.get("method"))
        if what == "pcc_colorize":
            similarity = ColourHeatmaps(model, device, margin=plc.get("margin", 48)).similarity
            min_sim = float(plc.get("min_sim_colour", 0.05))
        else:
            similarity = ModelHeatmaps(model, device).similarity
            min_sim = float(plc.get("min_sim_iou", 0.3))
    n = int(plc.get("scenes", 0) or 0)
    pairs = pairs_for_labelling(scenes[:n] if n > 0 else scenes, int(plc.get("every", 5)), int(plc.get("gap", 10)),
                                bool(plc.get("temporal", True)))
    log.info("pseudo-labelling %d pairs with %s (%s)", len(pairs), model_path or "colour statistics", what)
    summary = label_pairs(pairs, store, similarity, out, min_sim, plc.get("max_proposals"),
                          float(plc.get("min_margin", 0.0)), str(plc.get("geometry", "none")))
    summary["model"] = str(model_path) if model_path is not None else what
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def train_correspondence(cfg: dict[str, Any], pseudo_dirs: Sequence[Path], init: Path, out: Path, store: Any,
                         device: str = "cpu", resume: bool = True) -> Path:
    """Stage 3: the correspondence model, started from ``init`` (colouriser or previous iteration),
    trained on the pseudo-labels of ``pseudo_dirs`` (several: merged oldest first, ``merge_pseudolabels``)."""
    import torch

    from corr_core.methods.pcc.correspond import EDIT_PROBS, CorrespondenceBatches, CorrespondMethod
    from corr_core.methods.pcc.pseudolabel import merge_pseudolabels, read_pseudolabels
    from corr_core.train.init import init_from_checkpoint
    from corr_core.train.trainer import Trainer

    scfg = stage_config(cfg, "correspond")
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    ccfg = cfg.get("correspond", {})
    records = merge_pseudolabels([read_pseudolabels(d) for d in pseudo_dirs])
    batches = CorrespondenceBatches(records, store, int(scfg["train"]["batch_size"]),
                                    float(ccfg.get("cross_view", 0.7)), float(ccfg.get("erase_prob", 0.15)),
                                    float(ccfg.get("elsewhere_prob", 0.1)),
                                    bool(cfg.get("data", {}).get("jitter", True)), seed=seed + 2,
                                    synthetic=float(ccfg.get("synthetic", 0.0)),
                                    **{k: float(ccfg.get(k, 0.0)) for k in EDIT_PROBS})
    arch = ccfg.get("arch") or cfg.get("model", {}).get("arch", "pcc_resnet18_l2")
    method = CorrespondMethod(arch, float(ccfg.get("existence_weight", 0.5)))
    trainer = Trainer(method, batches, out, scfg, device=device)
    if not (resume and trainer.resume()):
        init_from_checkpoint(method, init)  # a colouriser of the architecture it extends, or the last iteration
    return trainer.fit()


def iterate(cfg: dict[str, Any], out: Path, scenes: list[Scene], device: str = "cpu", resume: bool = True,
            score: Any = None) -> dict[str, Any]:
    """Pretraining, then ``iterations`` rounds of (pseudo-label, train): the run folder layout of the
    module docstring. A stage whose output exists is not run again (delete it to redo it).

    Args:
        score: optional ``(checkpoint, name) -> dict`` called on each correspondence model (e.g.
            cross-view metrics on a tuning set); its results go into ``out/report.json``.

    Returns:
        The report: per iteration the pseudo-label summary, the model path and its scores.
    """
    n = int(cfg.get("iterations", 3))
    if n < 1:
        raise ConfigError(f"PCC: iterations must be >= 1, got {n}")
    colouriser = out / "pretrain" / "model.safetensors"
    if not (resume and colouriser.is_file() and (out / "pretrain" / "DONE").is_file()):
        colouriser = pretrain(cfg, out / "pretrain", scenes, device, resume)
        (out / "pretrain" / "DONE").write_text("")
    first = str(cfg.get("pseudolabel", {}).get("first", "colouriser"))
    if first not in FIRST_STAGE:
        raise ConfigError(f"PCC: pseudolabel.first must be one of {FIRST_STAGE}, got {first!r}")
    accumulate = bool(cfg.get("pseudolabel", {}).get("accumulate", False))
    store = view_store(cfg, scenes, out)
    report: dict[str, Any] = {"colouriser": str(colouriser), "first_pseudolabels": first, "iterations": []}
    model = colouriser
    for k in range(n):
        pseudo = out / f"pseudo_{k}"
        if resume and (pseudo / "summary.json").is_file():
            summary = json.loads((pseudo / "summary.json").read_text())
        else:
            source = None if (k == 0 and first == "colour_stats") else model
            summary = pseudolabel(cfg, source, pseudo, store, scenes, device)
        run = out / f"iter_{k + 1}"
        if resume and (run / "DONE").is_file():
            model = run / "model.safetensors"
        else:
            rounds = [out / f"pseudo_{r}" for r in range(k + 1)] if accumulate else [pseudo]
            model = train_correspondence(cfg, rounds, model, run, store, device, resume)
            (run / "DONE").write_text("")
        entry = {"iteration": k + 1, "pseudolabels": summary, "model": str(model)}
        if score is not None:
            entry["scores"] = score(model, f"iter_{k + 1}")
        report["iterations"].append(entry)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        log.info("PCC iteration %d: %s", k + 1, json.dumps({k2: v for k2, v in entry.items() if k2 != "pseudolabels"}))
    return report

