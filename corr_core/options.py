"""The user-facing settings shared by the command line and the ROS node, each defined once.

A feature model is chosen the same way everywhere (``corr eval``, ``corr bench``, ``corr export``,
``corr_node``): a checkpoint path, or a random initialisation with a seed (the papers' baseline).
Label propagation takes the same settings everywhere, with the defaults and ranges of
:class:`~corr_core.propagation.config.PropagationConfig`. This module holds both tables
(:data:`MODEL_OPTIONS`, :data:`PROPAGATION_OPTIONS`) and the argparse helpers built from them;
``corr_ros.params`` turns the same rows into declared ROS parameters. It does not import torch,
so ``corr --help`` stays fast.

Example::

    parser = argparse.ArgumentParser()
    add_model_args(parser)
    add_propagation_args(parser, ("topk", "radius"))
    args = parser.parse_args(["--random-init", "--topk", "5"])
    model_source(args)          # ModelSource(checkpoint=None, random_init_seed=0, device='cpu')
    propagation_overrides(args)  # {'topk': 5}
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corr_core.errors import ConfigError
from corr_core.propagation.config import PropagationConfig

__all__ = [
    "BACKENDS",
    "BACKEND_OPTIONS",
    "PRECISIONS",
    "BackendChoice",
    "MODEL_OPTIONS",
    "PROPAGATION_OPTIONS",
    "MATCH_DTYPES",
    "ModelSource",
    "Option",
    "add_backend_args",
    "add_model_args",
    "backend_choice",
    "add_propagation_args",
    "model_source",
    "propagation_overrides",
    "propagation_settings",
]


@dataclass(frozen=True)
class Option:
    """One setting: its name (``snake_case``: the ROS parameter; ``--kebab-case`` on the command
    line), type, default, help text and allowed values.

    Attributes:
        name: setting name.
        type: ``bool``, ``int``, ``float`` or ``str``.
        default: default value.
        help: one-line description (command-line help and ROS parameter description).
        range: inclusive ``(low, high)`` for numbers.
        choices: allowed strings.
        live: whether a running node may change it (else it is structural: reconfigure).
    """

    name: str
    type: type
    default: Any
    help: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    live: bool = False

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--long-term-every``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if not ok:
            return f"{self.name} must be of type {self.type.__name__}, got {value!r}"
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            return f"{self.name} must be in [{self.range[0]:g}, {self.range[1]:g}], got {value!r}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {list(self.choices)}, got {value!r}"
        return None


_P = PropagationConfig()

#: How the feature network is chosen. ``checkpoint`` '' together with ``random_init`` gives a
#: randomly initialised network seeded with ``seed``.
MODEL_OPTIONS: tuple[Option, ...] = (
    Option("checkpoint", str, "", "corr checkpoint (NAME.safetensors with NAME.json) or an ONNX file "
           "from `corr export onnx` (runs on onnxruntime)"),
    Option("random_init", bool, False, "use a randomly initialised network (the papers' baseline)"),
    Option("seed", int, 0, "seed of the random initialisation", range=(0, 2**31 - 1)),
    Option("device", str, "cpu", "torch device: cpu, cuda or cuda:N"),
)

#: ``match_precision`` -> :attr:`PropagationConfig.dtype <corr_core.propagation.config.PropagationConfig.dtype>`.
MATCH_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}

#: Label propagation settings (:class:`~corr_core.propagation.config.PropagationConfig` fields).
PROPAGATION_OPTIONS: tuple[Option, ...] = (
    Option("topk", int, _P.topk, "context positions kept per target position", range=(1, 100000), live=True),
    Option("context", int, _P.context, "preceding frames in the short-term memory (sizes the memory)",
           range=(0, 1000)),
    Option("radius", float, float(_P.radius), "spatial radius of the short-term search, in feature cells",
           range=(1e-6, 1.0e6), live=True),
    Option("temperature", float, _P.temperature, "softmax temperature of the affinities", range=(1e-6, 100.0),
           live=True),
    Option("long_term_every", int, _P.long_term_every, "long-term memory (MER/MAST): every n-th frame after "
           "the annotated one joins it (0: only the annotated frame, the CRW protocol)", range=(0, 100000)),
    Option("long_term_size", int, _P.long_term_size, "long-term memory: most frames kept, the annotated one "
           "included (sizes the memory)", range=(1, 1000)),
    Option("long_term_radius", float, 0.0, "long-term memory: search radius in feature cells (0: the whole "
           "image)", range=(0.0, 1.0e6)),
    Option("input_scale", float, float(_P.input_scale), "frames are resized by this factor before the "
           "network; 2 tracks small objects much better at about 4x the compute (labels keep the frame's "
           "size)", range=(0.125, 8.0)),
    Option("match_precision", str, "fp32", "precision of the stored context features and their dot products: "
           "fp32, or bf16 (half the memory; 1.4x faster matching on CPUs with AVX512-BF16 and on GPUs); "
           "top-k and softmax stay float32", choices=tuple(MATCH_DTYPES)),
)

#: Inference backends (:mod:`corr_core.runtime.backends`); ``auto``: onnxruntime for a ``.onnx``
#: checkpoint, tensorrt for a ``.engine`` file, torch otherwise.
BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
#: Numeric precision of the feature network; which backend takes which is checked when it loads.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

#: How the feature network runs (the same rows for the CLI and ``corr_node``).
BACKEND_OPTIONS: tuple[Option, ...] = (
    Option("backend", str, "auto", "inference backend: torch, onnxruntime (the checkpoint exported to ONNX, "
           "cached) or tensorrt (an engine built from that ONNX, cached); auto: onnxruntime for a .onnx "
           "checkpoint, tensorrt for a .engine file, torch otherwise. An absent backend is an error, "
           "never a fallback", choices=BACKENDS),
    Option("precision", str, "fp32", "network precision: fp32; fp16 (torch autocast on CUDA, tensorrt, "
           "onnxruntime's TensorRT provider), bf16 (torch autocast on CUDA or CPU, tensorrt), int8 "
           "(tensorrt engine calibrated by `corr export tensorrt --precision int8`)", choices=PRECISIONS),
)

_BY_NAME = {o.name: o for o in (*MODEL_OPTIONS, *PROPAGATION_OPTIONS, *BACKEND_OPTIONS)}


def option(name: str) -> Option:
    """The option called ``name``."""
    return _BY_NAME[name]


def propagation_settings(values: dict[str, Any]) -> dict[str, Any]:
    """:class:`PropagationConfig` fields from option values: ``long_term_radius`` 0 (command lines and
    ROS parameters have no infinity) becomes ``math.inf``, the whole image; ``match_precision``
    becomes ``dtype`` (:data:`MATCH_DTYPES`).

    Raises:
        ConfigError: an unknown ``match_precision``.
    """
    out = dict(values)
    if "long_term_radius" in out:
        out["long_term_radius"] = float(out["long_term_radius"]) or math.inf
    if "match_precision" in out:
        precision = out.pop("match_precision")
        if precision not in MATCH_DTYPES:
            raise ConfigError(f"match_precision must be one of {list(MATCH_DTYPES)}, got {precision!r}")
        out["dtype"] = MATCH_DTYPES[precision]
    return out


# ------------------------------------------------------------------------------ command line


@dataclass(frozen=True)
class ModelSource:
    """Where a feature network comes from: ``checkpoint``, or a random init with ``random_init_seed``."""

    checkpoint: Path | None
    random_init_seed: int | None
    device: str = "cpu"

    def describe(self) -> str:
        """``"runs/fc/model"`` or ``"random init (seed 0)"``."""
        return str(self.checkpoint) if self.checkpoint is not None else f"random init (seed {self.random_init_seed})"


def add_model_args(
    parser: argparse.ArgumentParser, default_help: str = "required", device: bool = True
) -> argparse._MutuallyExclusiveGroup:
    """Adds ``--checkpoint PATH | --random-init [SEED]`` (and ``--device``).

    Args:
        parser: the (sub)command's parser.
        default_help: what happens when neither is given, for the help text (e.g. "the shipped
            checkpoint").
        device: also add ``--device``.

    Returns:
        The mutually exclusive group, so a command can add another source (``--predictions``).
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoint", type=Path, default=None,
                       help=f"{option('checkpoint').help} ({default_help} unless --random-init)")
    group.add_argument("--random-init", type=int, nargs="?", const=0, default=None, metavar="SEED",
                       help=f"{option('random_init').help}; seed 0 unless given")
    if device:
        parser.add_argument("--device", default="cpu", help=f"{option('device').help} (default cpu)")
    return group


def model_source(args: argparse.Namespace, default: Path | None = None, what: str = "") -> ModelSource:
    """The model chosen by :func:`add_model_args` flags.

    Args:
        args: parsed arguments.
        default: checkpoint used when neither flag is given (None: one of them is required).
        what: extra ways of choosing, named in the error (e.g. "or --predictions DIR").

    Raises:
        ConfigError: neither flag given and no default.
    """
    checkpoint = getattr(args, "checkpoint", None)
    seed = getattr(args, "random_init", None)
    if checkpoint is None and seed is None:
        if default is None:
            raise ConfigError("give --checkpoint PATH or --random-init [SEED]" + (f" {what}" if what else ""))
        checkpoint = default
    return ModelSource(checkpoint, seed, str(getattr(args, "device", "cpu")))


def _number(opt: Option) -> Any:
    def parse(text: str) -> Any:
        try:
            value = opt.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {opt.type.__name__}, got {text!r}") from None
        reason = opt.check(value)
        if reason is not None:
            raise argparse.ArgumentTypeError(reason)
        return value

    parse.__name__ = opt.type.__name__
    return parse


def add_propagation_args(
    parser: argparse.ArgumentParser,
    names: Iterable[str] | None = None,
    defaults: dict[str, Any] | None = None,
    default_note: str | None = None,
) -> None:
    """Adds ``--topk``, ``--context``, ... (``names``: a subset; all by default).

    Values are range-checked while parsing; an absent flag stays None so that
    :func:`propagation_overrides` returns only what the user gave.

    Args:
        parser: the (sub)command's parser.
        names: which propagation options to offer.
        defaults: defaults to show in the help when the task's differ from
            :class:`PropagationConfig`'s (e.g. JHMDB's context 8).
        default_note: shown instead of the default value in every flag's help, for tasks whose
            defaults come from their protocol at run time (e.g. "the JHMDB protocol's").
    """
    wanted = set(names) if names is not None else None
    group = parser.add_argument_group("label propagation")
    for opt in PROPAGATION_OPTIONS:
        if wanted is not None and opt.name not in wanted:
            continue
        value = (defaults or {}).get(opt.name, opt.default)
        shown = default_note or (f"{value:g}" if isinstance(value, (int, float)) else str(value))
        group.add_argument(opt.flag, type=_number(opt), default=None, dest=opt.name,
                           help=f"{opt.help} (default {shown})")


def propagation_overrides(args: argparse.Namespace, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The propagation flags the user gave, as :class:`PropagationConfig` fields."""
    chosen = names if names is not None else [o.name for o in PROPAGATION_OPTIONS]
    given = {n: getattr(args, n) for n in chosen if getattr(args, n, None) is not None}
    return propagation_settings(given)


@dataclass(frozen=True)
class BackendChoice:
    """How the feature network runs: ``backend`` (:data:`BACKENDS`) and ``precision`` (:data:`PRECISIONS`)."""

    backend: str = "auto"
    precision: str = "fp32"


def add_backend_args(parser: argparse.ArgumentParser) -> None:
    """Adds ``--backend`` and ``--precision`` (:data:`BACKEND_OPTIONS`)."""
    for opt in BACKEND_OPTIONS:
        parser.add_argument(opt.flag, default=opt.default, choices=opt.choices, dest=opt.name,
                            help=f"{opt.help} (default {opt.default})")


def backend_choice(args: argparse.Namespace) -> BackendChoice:
    """The :class:`BackendChoice` of :func:`add_backend_args` flags (defaults when absent)."""
    return BackendChoice(str(getattr(args, "backend", "auto") or "auto"),
                         str(getattr(args, "precision", "fp32") or "fp32"))
