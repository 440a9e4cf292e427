"""What the ``corr eval`` tasks share: model and propagation flags (from :mod:`corr_core.options`),
output folders, and the tracker factory every tracking task runs.

Torch-free at import time; the run-time helpers import the library lazily.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from corr_core.commands.common import add_overwrite_arg, check_output, timestamped
from corr_core.options import (
    PROPAGATION_OPTIONS,
    ModelSource,
    add_backend_args,
    add_model_args,
    add_propagation_args,
    backend_choice,
    model_source,
    propagation_overrides,
)

#: Propagation flags of the tasks that propagate on the feature grid (JHMDB, VIP).
PROPAGATION_FLAGS = ("topk", "context", "radius", "temperature")
#: ``corr eval vos`` takes every propagation option (long-term memory, input scale).
VOS_PROPAGATION_FLAGS = tuple(o.name for o in PROPAGATION_OPTIONS)


def add_task_args(
    p: argparse.ArgumentParser, task: str, propagation: Sequence[str], default_note: str | None = None,
    backend: bool = False,
) -> argparse._MutuallyExclusiveGroup:
    """Adds the model flags (``--checkpoint | --random-init [SEED]``, ``--device``), the
    ``propagation`` flags, ``--out``/``--overwrite`` and ``--quiet``; with ``backend`` also
    ``--backend``/``--precision`` (tasks that track through :func:`tracker_factory`).

    Returns:
        The model-source group, so a task can add another source (``--predictions``).
    """
    source = add_model_args(p, default_help="the shipped checkpoint")
    if backend:
        add_backend_args(p)
    add_propagation_args(p, propagation, default_note=default_note)
    add_out_args(p, task)
    p.add_argument("--quiet", action="store_true", help="no per-video progress lines")
    return source


def add_out_args(p: argparse.ArgumentParser, task: str) -> None:
    """``--out DIR`` (default ``runs/eval/<task>-<time>``) and ``--overwrite``."""
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default runs/eval/{task}-<time>); a folder holding an earlier run "
                        "is refused unless --overwrite")
    add_overwrite_arg(p, "an --out folder that holds an earlier run")


def output_folder(args: argparse.Namespace, task: str) -> Path:
    """``--out`` checked against an earlier run, or a new timestamped folder under ``runs/eval``.

    Raises:
        ConfigError: ``--out`` holds an earlier run and ``--overwrite`` was not given.
    """
    if args.out is None:
        return timestamped(Path("runs") / "eval", task)
    return check_output(args.out, args.overwrite)


def chosen_model(args: argparse.Namespace, what: str = "") -> ModelSource:
    """The model of ``--checkpoint``/``--random-init``; the shipped checkpoint when neither is given.

    Raises:
        ConfigError: neither flag given and no checkpoint is shipped.
    """
    from corr_core.api import packaged_checkpoint

    return model_source(args, default=packaged_checkpoint(), what=what)


def model_info(source: ModelSource, propagation: dict[str, Any], backend: str = "auto",
               precision: str = "fp32") -> dict[str, Any]:
    """The ``model`` entry of a run's ``metrics.json``."""
    return {
        "checkpoint": None if source.checkpoint is None else str(source.checkpoint),
        "random_init_seed": source.random_init_seed,
        "propagation": propagation,
        "device": source.device,
        "backend": backend,
        "precision": precision,
    }


def tracker_factory(
    args: argparse.Namespace, names: Sequence[str], defaults: dict[str, Any] | None = None
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A factory of trackers (one per video) for the model and propagation flags of ``args``.

    The first tracker is built at once, so a bad checkpoint or setting fails before any video is
    read; later calls reset and return it (or build a new one, for trackers without ``reset()``).

    Args:
        args: parsed arguments of a task (model and propagation flags).
        names: the task's propagation flags.
        defaults: the protocol's propagation settings, under the flags given.

    Returns:
        ``(factory, model info for metrics.json)``.
    """
    from corr_core.api import build_tracker

    source = chosen_model(args, "or --predictions DIR" if hasattr(args, "predictions") else "")
    propagation = {**(defaults or {}), **propagation_overrides(args, names)}
    choice = backend_choice(args)
    kwargs = {
        "checkpoint": None if source.checkpoint is None else str(source.checkpoint),
        "propagation": propagation or None,
        "device": source.device,
        "random_init_seed": source.random_init_seed,
        "backend": choice.backend,
        "precision": choice.precision,
    }
    first = build_tracker(**kwargs)  # fail early on a bad checkpoint or settings
    state = {"fresh": first}

    def factory():
        tracker = state.pop("fresh", None)
        if tracker is not None:
            return tracker
        if hasattr(first, "reset"):
            first.reset()
            return first
        return build_tracker(**kwargs)

    return factory, model_info(source, propagation, choice.backend, choice.precision)


def size_args(p: argparse.ArgumentParser, default: str) -> None:
    """``--size H W`` (default: the protocol's, ``default`` describes it) and ``--native-size``."""
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help=f"frames are resized to H x W before tracking (default {default})")
    p.add_argument("--native-size", action="store_true", help="track at the frames' own size (no resize)")


def chosen_size(args: argparse.Namespace, default: tuple[int, int]) -> tuple[int, int] | None:
    """``--size`` (or the protocol's ``default``), None with ``--native-size``.

    Raises:
        ConfigError: a size that is not positive.
    """
    from corr_core.errors import ConfigError

    if args.native_size:
        return None
    h, w = args.size if args.size is not None else default
    if h < 1 or w < 1:
        raise ConfigError(f"--size {h} {w}: height and width must be positive (or use --native-size)")
    return h, w


def print_speed(metrics: dict) -> None:
    """Prints the tracking speed of a run, when it has one."""
    fps = metrics.get("tracking", {}).get("frames_per_second")
    if fps:
        print(f"tracking: {fps:.2f} frames/s over {metrics['tracking']['frames']} frames")
