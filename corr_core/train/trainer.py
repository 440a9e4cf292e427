"""One trainer for every method: checkpoint + resume, logs, NaN guard, provenance.

A *method* is an ``nn.Module`` with

- ``training_step(batch) -> (loss, logs: dict[str, float])``, also reachable as ``forward(batch)``
  (so that :class:`~torch.nn.parallel.DistributedDataParallel` can wrap the method),
- ``after_step(step, total_steps)`` (EMA updates and the like; optional),
- ``log_values() -> dict[str, float]`` (costlier logs, asked for on logged steps only; optional),
- ``online_parameters()`` (what the optimiser updates; defaults to ``parameters()``),
- ``feature_model() -> nn.Module`` (the network used downstream),
- attributes ``name`` and ``arch``.

Batch iterators may offer ``state_dict()`` / ``load_state_dict(state)`` (JSON-able, e.g. their
random generators' states): the trainer saves it with ``last.*`` (with torch's RNG state), so a
resumed run draws exactly the batches the uninterrupted run would have drawn.

Every run directory holds ``config.yaml`` (resolved), ``provenance.json`` (git SHA, time),
``log.csv`` (one row per logged step), ``last.{safetensors,json}`` (full state for resume) and,
at the end, ``model.{safetensors,json}`` (the feature backbone alone, what the tracker loads).

Under ``torchrun`` (see :mod:`corr_core.train.distributed`) the method is wrapped in
DistributedDataParallel, the logged loss is the mean over processes, a NaN on any process stops
all of them, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from corr_core.config import git_sha, save_run_config
from corr_core.errors import CheckpointError, TrainingError
from corr_core.io.checkpoint import checkpoint_paths, load_checkpoint, load_module_state, save_checkpoint
from corr_core.train.distributed import DistInfo, check_replicas, mean_over_ranks

log = logging.getLogger(__name__)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Splits an optimiser state into tensors (for safetensors) and JSON-able scalars."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.ndim > 0:
                tensors[f"optim.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = float(v)
    return tensors, {"scalars": scalars, "param_groups": sd["param_groups"]}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):  # (rng.* entries are not the optimiser's)
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def truncate_log(path: Path, step: int) -> int:
    """Drops the rows of ``log.csv`` logged after ``step`` (the step a resumed run starts from).

    A run that stops between two saves has logged steps its last state does not hold; resuming
    repeats them, so they go, and every step appears once.

    Returns:
        How many rows were dropped.
    """
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return 0

    def after(row: list[str]) -> bool:
        try:
            return bool(row) and int(row[0]) > step
        except ValueError:
            return False

    kept = [rows[0]] + [r for r in rows[1:] if not after(r)]
    dropped = len(rows) - len(kept)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(kept)
        tmp.replace(path)
        log.info("%s: dropped %d rows logged after step %d (the state resumed from)", path, dropped, step)
    return dropped


class Trainer:
    """Runs the optimisation loop of a method.

    Args:
        method: the method module (see module docstring).
        batches: an endless iterator of batches (dicts of tensors on the CPU).
        run_dir: where logs and checkpoints go.
        cfg: the resolved config; uses ``train.iters``, ``train.log_every``, ``train.ckpt_every``,
            ``train.keep_every`` (0: off; else also keep ``model_<step>.*`` snapshots), ``optim.lr``,
            ``optim.weight_decay``, ``train.amp`` and ``train.grad_clip`` when present.
        device: torch device string.
        dist_info: this process's place in a distributed run (None: a single process).
    """

    def __init__(
        self,
        method: nn.Module,
        batches: Iterator[dict[str, torch.Tensor]],
        run_dir: str | Path,
        cfg: dict[str, Any],
        device: str = "cpu",
        dist_info: DistInfo | None = None,
    ) -> None:
        self.dist = dist_info or DistInfo(device=device)
        self.method = method.to(device)
        self._step_fn = self.method.training_step
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # replicas start from rank 0's weights; gradients are averaged over the processes
            ids = [torch.device(device)] if torch.device(device).type == "cuda" else None
            self._step_fn = DistributedDataParallel(self.method, device_ids=ids)
        self.batches = batches
        self.run_dir = Path(run_dir)
        self.cfg = cfg
        self.device = torch.device(device)
        tcfg, ocfg = cfg.get("train", {}), cfg.get("optim", {})
        self.iters = int(tcfg.get("iters", 1000))
        self.log_every = int(tcfg.get("log_every", 10))
        self.ckpt_every = int(tcfg.get("ckpt_every", 200))
        self.keep_every = int(tcfg.get("keep_every", 0) or 0)
        self.grad_clip = float(tcfg.get("grad_clip", 0.0) or 0.0)
        self.amp = bool(tcfg.get("amp", False)) and self.device.type == "cuda"
        params = list(method.online_parameters()) if hasattr(method, "online_parameters") else list(method.parameters())
        self.optimizer = torch.optim.Adam(
            params, lr=float(ocfg.get("lr", 1e-3)), weight_decay=float(ocfg.get("weight_decay", 0.0))
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.step = 0
        self._git_sha = git_sha()  # the code the run started from, recorded in every file it writes

    # ---------------------------------------------------------------- checkpoints
    def _identity(self) -> dict[str, str]:
        """What a saved state must match to be resumed: the method and its architecture."""
        return {"method": getattr(self.method, "name", type(self.method).__name__),
                "arch": getattr(self.method, "arch", "")}

    def _meta(self, kind: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "kind": kind,
            **self._identity(),
            "step": self.step,
            "iters": self.iters,
            "config": self.cfg,
            "git_sha": self._git_sha,
            **(extra or {}),
        }

    def save_state(self) -> Path:
        """Writes ``last.*``: the whole method (online + target) and the optimiser (rank 0 only)."""
        tensors = {f"method.{k}": v for k, v in self.method.state_dict().items()}
        opt_tensors, opt_meta = _optimizer_tensors(self.optimizer)
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        extra = {"optimizer": opt_meta, "rng": {"torch_seed": torch.initial_seed()}}
        if hasattr(self.batches, "state_dict"):  # where the data stream is, so a resumed run sees the same batches
            extra["data_state"] = self.batches.state_dict()
        return save_checkpoint(self.run_dir / "last", tensors, self._meta("train-state", extra))

    def resume(self, path: str | Path | None = None) -> bool:
        """Loads ``last.*`` from ``path`` (default: this run dir) when present; returns whether it did.

        Raises:
            CheckpointError: the state belongs to another method or architecture.
        """
        path = Path(path) if path else self.run_dir / "last"
        if not checkpoint_paths(path)[0].is_file():
            return False
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "train-state":
            raise CheckpointError(f"{path}: not a training state (kind {meta.get('kind')!r}); cannot resume from it")
        for key, mine in self._identity().items():
            if meta.get(key) != mine:
                raise CheckpointError(f"{path}: written for {key} {meta.get(key)!r}, this run uses {mine!r}")
        load_module_state(self.method, tensors, "method.", str(path))
        _restore_optimizer(self.optimizer, tensors, meta["optimizer"])
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        if "data_state" in meta and hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict(meta["data_state"])
        self.step = int(meta["step"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def save_model(self, metrics: dict[str, Any] | None = None, name: str = "model") -> Path:
        """Writes ``<name>.*`` (default ``model.*``): the downstream feature network alone."""
        feat = self.method.feature_model()
        tensors = {f"backbone.{k}": v for k, v in feat.state_dict().items()}
        return save_checkpoint(self.run_dir / name, tensors, self._meta("backbone", {"metrics": metrics or {}}))

    # ---------------------------------------------------------------- loop
    def _move(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def fit(self) -> Path:
        """Trains until ``train.iters`` steps; returns the path of ``model.safetensors``."""
        main = self.dist.is_main
        if main:
            save_run_config(self.run_dir, self.cfg, {"method": getattr(self.method, "name", ""),
                                                     "processes": self.dist.world_size})
        log_path = self.run_dir / "log.csv"
        new_log = not log_path.exists() or self.step == 0
        if main and not new_log:
            truncate_log(log_path, self.step)  # rows after the resumed step would repeat
        fields: list[str] | None = None
        self.method.train()
        t0, seen = time.time(), 0
        with open(log_path if main else os.devnull, "w" if new_log else "a", newline="") as fh:
            writer = None
            bar = tqdm(total=self.iters, initial=self.step, desc="train", dynamic_ncols=True, mininterval=2.0,
                       disable=not main)
            while self.step < self.iters:
                batch = self._move(next(self.batches))
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss, logs = self._step_fn(batch)
                # every process takes the same decisions from the same numbers
                loss_value = logs["loss"] = mean_over_ranks(float(loss.detach()), self.dist)
                if not math.isfinite(loss_value):
                    # The NaN weights are never written: last.* still holds the last good state.
                    raise TrainingError(
                        f"loss became {loss_value} at step {self.step}; last good state (if any): "
                        f"{self.run_dir / 'last.safetensors'} (lower optim.lr or check the data)"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                if self.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"], self.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.step += 1
                if hasattr(self.method, "after_step"):
                    self.method.after_step(self.step, self.iters)
                seen += next(iter(batch.values())).shape[0] * self.dist.world_size
                bar.update(1)
                if not main:
                    continue
                if self.step % self.log_every == 0 or self.step == self.iters:
                    if hasattr(self.method, "log_values"):
                        logs.update(self.method.log_values())
                    row = {"step": self.step, "time_s": round(time.time() - t0, 2),
                           "lr": self.optimizer.param_groups[0]["lr"], **logs}
                    if writer is None:
                        fields = list(row)
                        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
                        if new_log:
                            writer.writeheader()
                    writer.writerow(row)
                    fh.flush()
                    bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}")
                if self.step % self.ckpt_every == 0:
                    self.save_state()
                    self.save_model()  # a usable snapshot of the feature network, overwritten
                if self.keep_every > 0 and self.step % self.keep_every == 0:
                    self.save_model(name=f"model_{self.step:07d}")  # kept: to compare along training
            bar.close()
        check_replicas(self.method, self.dist)
        dt = max(time.time() - t0, 1e-9)
        path = checkpoint_paths(self.run_dir / "model")[0]
        if main:
            self.save_state()
            path = self.save_model({"train_images_per_s": seen / dt, "train_seconds": dt,
                                    "processes": self.dist.world_size})
        if self.dist.enabled:
            torch.distributed.barrier()  # the others return once rank 0 has written the model
        return path
