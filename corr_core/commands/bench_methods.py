"""``corr bench methods``: the temporal methods of the seeds compared head to head.

Every CPU recipe (CorrFlow, MER, HVC, SFC) is trained on the same data and budget as FC's stage 1
(``training/<method>_cpu.yaml``, 1,200 steps), with one ablation per paper, and each checkpoint is
scored the same way, beside three reference rows (copy the first frame's mask; a randomly
initialised ResNet-18; the shipped FC checkpoint):

* J&F on the DAVIS 2016 480p dev sequences (bear, elephant, tennis: never trained on), the offline
  propagation protocol (``corr eval vos`` defaults);
* J&F on held-out simulated episodes (seeds never trained on), ego and exo camera (not for the
  ablations, which are about the dev figure);
* training speed (samples per second; a sample is the method's unit: an image's two views, a clip)
  and peak memory, from a short probe of each recipe in a fresh process, all in this run;
* the effective rank of the features on the dev frames (:func:`corr_core.metrics.effective_rank`).

Runs live in ``--runs/<run>`` (trained with ``--train`` when missing, else reported as missing);
evaluations in ``--runs/eval/dev480p_<row>`` and ``--runs/eval/sim_<cam>_<row>`` are reused when
present, so the table can be rebuilt without recomputing. Writes ``--out`` (JSON) and a Markdown
table beside it::

    corr generate sim --out runs/heldout_sim --seed 0 --episodes 10 --frames 30 --no-bag
    corr bench methods --train --runs runs --sim runs/heldout_sim --out docs/bench/methods.json
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corr_core.commands.bench_common import add_report_args, check_out_arg, host_facts, write_report
from corr_core.errors import ConfigError, DataError

__all__ = ["ROWS", "Row", "add_parser", "markdown", "run_methods"]

_CLI = "import sys; from corr_core.cli import main; sys.exit(main(sys.argv[1:]))"
_PROBE = ("import resource, sys; from corr_core.cli import main; rc = main(sys.argv[1:]); "
          "print('PEAK_RSS_MIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0); sys.exit(rc)")


@dataclass(frozen=True)
class Row:
    """One row of the table.

    Attributes:
        key: the row's name in eval folders (``dev480p_<key>``).
        label: what the table shows.
        kind: ``method``, ``ablation`` or ``reference``.
        recipe: the recipe that trains it (None: nothing to train).
        overrides: ``key=value`` overrides of the recipe.
        run: run folder under ``--runs`` (default: the recipe's name).
        checkpoint: the checkpoint inside the run folder.
        versus: the row an ablation is compared with.
        sim: also score it on the sim episodes (ablations: the dev sequences only).
        branch: the checkpoint is this branch of the run's fused SFC network (split out when absent).
    """

    key: str
    label: str
    kind: str = "method"
    recipe: str | None = None
    overrides: tuple[str, ...] = ()
    run: str | None = None
    checkpoint: str = "model.safetensors"
    versus: str | None = None
    sim: bool = True
    branch: str | None = None

    @property
    def run_name(self) -> str:
        """The run folder's name."""
        return self.run or Path(str(self.recipe)).stem


ROWS: tuple[Row, ...] = (
    Row("copy_first", "copy the first frame's mask", "reference"),
    Row("random", "random init (ResNet-18)", "reference"),
    Row("fc", "FC, shipped (stage 2: 4,200 steps)", "reference"),
    Row("corrflow", "CorrFlow", recipe="training/corrflow_cpu.yaml"),
    Row("corrflow_nocycle", "CorrFlow without cycle consistency", "ablation", "training/corrflow_cpu.yaml",
        ("model.cycle=false",), run="corrflow_cpu_nocycle", versus="corrflow", sim=False),
    Row("mer", "MER", recipe="training/mer_cpu.yaml", overrides=("train.keep_every=400",)),
    Row("mer_400", "MER at 400 steps", "ablation", run="mer_cpu", checkpoint="model_0000400.safetensors",
        sim=False),
    Row("mer_nosampler_400", "MER without the Multi-Cluster Sampler, 400 steps", "ablation",
        "training/mer_cpu.yaml", ("model.sampler=false", "train.iters=400"), run="mer_cpu_nosampler",
        versus="mer_400", sim=False),
    Row("hvc", "HVC", recipe="training/hvc_cpu.yaml"),
    Row("hvc_static", "HVC static only", "ablation", "training/hvc_cpu.yaml", ("model.dynamic=false",),
        run="hvc_cpu_static", versus="hvc", sim=False),
    Row("sfc", "SFC (semantic + FC, fused)", recipe="training/sfc_cpu.yaml"),
    Row("sfc_fine", "SFC's FC branch alone (= FC stage 1)", "ablation", run="sfc_cpu",
        checkpoint="branches/fine_grained.safetensors", versus="sfc", sim=False, branch="fine_grained"),
)
DEV_SEQUENCES = ("bear", "elephant", "tennis")


def _corr(args: list[str], log: Any) -> None:
    log("$ corr " + " ".join(args))
    done = subprocess.run([sys.executable, "-c", _CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        raise DataError(f"`corr {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def _checkpoint(row: Row, runs: Path, train: bool, log: Any) -> Path | None:
    """The row's checkpoint (trained first with ``train`` when its run is missing), or None."""
    run = runs / row.run_name
    path = run / row.checkpoint
    if not path.is_file() and row.branch and (run / "model.safetensors").is_file():
        from corr_core.methods.sfc import split_fused

        split_fused(run / "model", run / "branches")
    if not path.is_file() and train and row.recipe is not None:
        _corr(["train", row.recipe, "--out", str(run), *row.overrides], log)
    return path if path.is_file() else None


def _jf(folder: Path) -> dict[str, Any] | None:
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    objects: dict[str, list[float]] = {}
    for o in metrics["per_object"]:
        objects.setdefault(o["sequence"], []).append(o["J&F-Mean"])
    per = {seq: statistics.fmean(values) for seq, values in objects.items()}
    return {"J&F": metrics["global"]["J&F-Mean"], "J": metrics["global"]["J-Mean"],
            "F": metrics["global"]["F-Mean"], "per_sequence": per}


def _evaluate(row: Row, model: list[str], davis: Path, sim: Path | None, evals: Path, log: Any) -> dict[str, Any]:
    """Dev and sim J&F of a row (eval folders reused when present)."""
    jobs = {"dev": (evals / f"dev480p_{row.key}", davis, "dev480p", "480p")}
    if sim is not None and row.sim:
        for cam in ("ego", "exo1"):
            jobs[f"sim_{cam}"] = (evals / f"sim_{cam}_{row.key}", sim / cam, "val", "240p")
    out = {}
    for name, (folder, root, split, resolution) in jobs.items():
        if _jf(folder) is None:
            if not model:  # no network: the copy-first-frame reference
                _copy_first(root, split, resolution, folder)
            else:
                _corr(["eval", "vos", "--davis", str(root), "--split", split, "--resolution", resolution, *model,
                       "--no-overlays", "--quiet", "--out", str(folder), "--overwrite"], log)
        out[name] = _jf(folder)
    return out


class CopyFirstFrame:
    """The copy-first-frame reference: every frame gets the first frame's mask."""

    def __init__(self) -> None:
        self.first = None

    def step(self, frame: Any, masks: Any = None) -> Any:
        if masks is not None:
            self.first = masks.copy()
        return self.first


def _copy_first(root: Path, split: str, resolution: str, folder: Path) -> None:
    from corr_core.data.davis import DavisDataset
    from corr_core.evaluation.vos import run_vos

    dataset = DavisDataset(root, resolution=resolution, split=split)
    run_vos(CopyFirstFrame, dataset, folder, overlays=False, progress=False, extra={"model": "copy first frame"})


def _probe(row: Row, iters: int, log: Any) -> dict[str, Any] | None:
    """Training speed and peak memory of a recipe: ``iters`` steps in a fresh process."""
    if row.recipe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="corr_probe_") as tmp:
        args = ["train", row.recipe, "--out", tmp, "--no-resume", *row.overrides, f"train.iters={iters}",
                "train.log_every=1", f"train.ckpt_every={iters}", "train.keep_every=0"]
        log("$ corr " + " ".join(args) + "  (probe)")
        done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise DataError(f"probe of {row.recipe} failed: {done.stderr.strip()[-2000:]}")
        peak = float(done.stdout.split("PEAK_RSS_MIB")[-1].split()[0])
        with open(Path(tmp) / "log.csv") as fh:
            times = [float(r["time_s"]) for r in csv.DictReader(fh)]
        cfg = json.loads((Path(tmp) / "model.json").read_text())["config"]
    step_s = statistics.median(b - a for a, b in zip(times[1:], times[2:], strict=False))  # the first steps warm up
    batch = int(cfg["train"]["batch_size"])
    return {"step_s": step_s, "samples_per_s": batch / step_s, "batch": batch, "peak_rss_mib": peak}


def _effective_rank(model: list[str], davis: Path, every: int = 10) -> float:
    """Effective rank of the network's features on every ``every``-th frame of the dev sequences."""
    import numpy as np
    import torch

    from corr_core.api import load_feature_model
    from corr_core.data.davis import DavisDataset
    from corr_core.metrics import effective_rank

    if model[0] == "--random-init":
        net, _ = load_feature_model(None, random_init_seed=int(model[1]))
    else:
        net, _ = load_feature_model(model[1])
    dataset = DavisDataset(davis, resolution="480p", split="dev480p")
    feats = []
    with torch.inference_mode():
        for seq in dataset.sequences:
            for i in range(0, dataset.num_frames(seq), every):
                x = torch.from_numpy(np.ascontiguousarray(dataset.read_frame(seq, i))).permute(2, 0, 1)
                feats.append(net(x[None].float() / 255.0)[0].flatten(1).t())
    return effective_rank(torch.cat(feats))


def run_methods(runs: Path, davis: Path, sim: Path | None, train: bool = False, probe_iters: int = 12,
                rows: tuple[Row, ...] = ROWS, log: Any = print) -> dict[str, Any]:
    """Trains (``train``), evaluates and probes every row; returns the report."""
    from corr_core.api import packaged_checkpoint

    if not davis.is_dir():
        raise DataError(f"--davis {davis}: folder not found")
    if sim is not None and not all((sim / cam).is_dir() for cam in ("ego", "exo1")):
        raise DataError(f"--sim {sim}: expected ego/ and exo1/ (from `corr generate sim --no-bag`)")
    results = []
    for row in rows:
        log(f"--- {row.label}")
        entry: dict[str, Any] = {"key": row.key, "label": row.label, "kind": row.kind, "versus": row.versus,
                                 "recipe": row.recipe, "overrides": list(row.overrides)}
        if row.key == "copy_first":
            model: list[str] | None = []
        elif row.key == "random":
            model = ["--random-init", "0"]
        elif row.key == "fc":
            model = ["--checkpoint", str(packaged_checkpoint())]
        else:
            ckpt = _checkpoint(row, runs, train, log)
            model = None if ckpt is None else ["--checkpoint", str(ckpt)]
            entry["checkpoint"] = None if ckpt is None else str(ckpt)
        if model is None:
            entry["missing"] = f"{runs / row.run_name / row.checkpoint} (give --train)"
            results.append(entry)
            continue
        entry.update(_evaluate(row, model, davis, sim, runs / "eval", log))
        entry["effective_rank"] = _effective_rank(model, davis) if model else None
        entry["train"] = _probe(row, probe_iters, log) if probe_iters > 0 and row.kind == "method" else None
        results.append(entry)
    return {"command": "corr bench methods", "runs": str(runs), "davis": str(davis), "sim": str(sim),
            "probe_iters": probe_iters, "host": host_facts(), "results": results}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    by_key = {r["key"]: r for r in report["results"]}
    rand = (by_key.get("random") or {}).get("dev") or {}
    lines = [
        "# corr bench methods", "",
        f"DAVIS 2016 480p dev ({', '.join(DEV_SEQUENCES)}) and held-out sim episodes ({report['sim']}), offline "
        "propagation protocol (top-k 10, context 20, radius 12); CPU recipes on FC stage 1's data and budget. "
        f"Training speed and peak memory: {report['probe_iters']} steps of each recipe in a fresh process, "
        f"this run, host {report['host']['processor']} ({report['host']['cpu_count']} CPUs).", "",
        "| row | dev J&F | vs random | bear / elephant / tennis | sim ego | sim exo1 | train samples/s (batch) "
        "| peak MiB | eff. rank |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        if r.get("missing"):
            lines.append(f"| {r['label']} | not trained: {r['missing']} | | | | | | | |")
            continue
        dev = r.get("dev") or {}
        seqs = " / ".join(_fmt(dev.get("per_sequence", {}).get(s)) for s in DEV_SEQUENCES)
        delta = "-" if not rand or r["key"] == "random" else f"{dev['J&F'] - rand['J&F']:+.3f}"
        tr = r.get("train") or {}
        speed = f"{tr['samples_per_s']:.1f} ({tr['batch']})" if tr else "-"
        label = r["label"] + (f" (vs {by_key[r['versus']]['label']})" if r.get("versus") in by_key else "")
        lines.append(f"| {label} | {_fmt(dev.get('J&F'))} | {delta} | {seqs} | "
                     f"{_fmt((r.get('sim_ego') or {}).get('J&F'))} | {_fmt((r.get('sim_exo1') or {}).get('J&F'))} | "
                     f"{speed} | {_fmt(tr.get('peak_rss_mib'), 0) if tr else '-'} | "
                     f"{_fmt(r.get('effective_rank'), 1)} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Runs ``corr bench methods``."""
    check_out_arg(args.out, args.overwrite)
    if args.probe_iters < 0 or 0 < args.probe_iters < 3:
        raise ConfigError(f"--probe-iters must be 0 (off) or >= 3, got {args.probe_iters}")
    report = run_methods(args.runs, args.davis, None if args.no_sim else args.sim, train=args.train,
                         probe_iters=args.probe_iters, log=lambda line: print(line, file=sys.stderr, flush=True))
    write_report(report, args.out, "methods", markdown(report))
    return 0


def add_parser(tasks: argparse._SubParsersAction) -> None:
    """Registers ``corr bench methods``."""
    p = tasks.add_parser("methods", help="the temporal methods' CPU recipes compared head to head (train, "
                         "evaluate on DAVIS dev and sim, speed, memory, feature rank)", description=__doc__,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="run folders (default runs)")
    p.add_argument("--davis", type=Path, default=Path("../shared/data/davis2016-train"),
                   help="DAVIS 2016 root with the dev480p split (default ../shared/data/davis2016-train)")
    p.add_argument("--sim", type=Path, default=Path("runs/heldout_sim"),
                   help="held-out sim episodes from `corr generate sim --no-bag` (default runs/heldout_sim)")
    p.add_argument("--no-sim", action="store_true", help="DAVIS dev only")
    p.add_argument("--train", action="store_true", help="train the runs that are missing (about 30 min each here)")
    p.add_argument("--probe-iters", type=int, default=12, help="steps of the speed/memory probe (0: off)")
    add_report_args(p, "methods")
    p.set_defaults(func=run)
