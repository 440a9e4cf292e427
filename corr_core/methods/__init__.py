"""Self-supervised objectives, one package per paper, registered in :data:`METHODS`.

A method is registered as a :class:`MethodSpec`: how to build its ``nn.Module`` (the recipe's
``model`` section as keyword arguments; see :mod:`corr_core.train.trainer` for what the module
must offer) and how to make its training batches from the recipe (:class:`BatchContext`). ``corr
train`` looks both up by the recipe's ``method``, so a new method needs no change to the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from corr_core.errors import ConfigError


@dataclass(frozen=True)
class BatchContext:
    """What a method's batch builder gets.

    Attributes:
        cfg: the resolved recipe.
        data: its ``data`` section, relative paths resolved.
        cache_dir: where data may be rendered or cached (``<run>/cache``).
        batch_size: items per step for this process.
        seed: seed of this process's data stream.
        render: whether this process renders simulated data (rank 0); the others read it.
    """

    cfg: dict[str, Any]
    data: dict[str, Any]
    cache_dir: Path
    batch_size: int
    seed: int
    render: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: ``build(**model_section) -> nn.Module`` and ``batches(ctx) -> iterator``."""

    build: Callable[..., nn.Module]
    batches: Callable[[BatchContext], Iterator[dict[str, Any]]]


def _fc_batches(ctx: BatchContext) -> Iterator[dict[str, Any]]:
    from corr_core.train.data import PairCropBatches, build_pool

    pool = build_pool(ctx.data, cache_dir=ctx.cache_dir, render_sim=ctx.render)
    return PairCropBatches(pool, ctx.batch_size, int(ctx.data.get("crop_size", 128)),
                           tuple(ctx.data.get("scale", (0.08, 1.0))), seed=ctx.seed)


def _fc(**kwargs: Any) -> nn.Module:
    from corr_core.methods.fc import FCMethod

    return FCMethod(**kwargs)


def _corrflow_batches(ctx: BatchContext) -> Iterator[dict[str, Any]]:
    from corr_core.methods.corrflow.batches import build_clip_batches

    return build_clip_batches(ctx.cfg, ctx.data, ctx.cache_dir, ctx.batch_size, ctx.seed, render=ctx.render)


def _corrflow(**kwargs: Any) -> nn.Module:
    from corr_core.methods.corrflow import CorrFlowMethod

    return CorrFlowMethod(**kwargs)


def _hvc(**kwargs: Any) -> nn.Module:
    from corr_core.methods.hvc import HVCMethod

    return HVCMethod(**kwargs)


def _mer_batches(ctx: BatchContext) -> Iterator[dict[str, Any]]:
    from corr_core.data.clips import build_clip_pool
    from corr_core.methods.mer.data import ClipBatches

    clip = ctx.data.get("clip") or {}
    refs, gap, flow_gap = int(clip.get("refs", 2)), tuple(clip.get("gap", (1, 4))), int(clip.get("flow_gap", 1))
    pool = build_clip_pool(ctx.data, ctx.cache_dir, render_sim=ctx.render,
                           span=ClipBatches.span(refs, int(gap[0]), flow_gap))
    return ClipBatches(pool, ctx.batch_size, int(ctx.data.get("crop_size", 128)),
                       tuple(ctx.data.get("scale", (0.25, 1.0))), refs=refs, gap=gap, flow_gap=flow_gap,
                       flow_scale=float(clip.get("flow_scale", 8.0)), seed=ctx.seed,
                       preset=str(clip.get("preset", "medium")))


def _mer(**kwargs: Any) -> nn.Module:
    from corr_core.methods.mer import MERMethod

    return MERMethod(**kwargs)


METHODS: dict[str, MethodSpec] = {"fc": MethodSpec(_fc, _fc_batches)}
METHODS["corrflow"] = MethodSpec(_corrflow, _corrflow_batches)  # clips (corr_core.data.clips)
METHODS["hvc"] = MethodSpec(_hvc, _fc_batches)  # two crops of one image, as FC
METHODS["mer"] = MethodSpec(_mer, _mer_batches)


def _sfc_batches(ctx: BatchContext) -> Iterator[dict[str, Any]]:
    from corr_core.methods.sfc.data import sfc_batches

    return sfc_batches(ctx)


def _sfc_semantic_batches(ctx: BatchContext) -> Iterator[dict[str, Any]]:
    from corr_core.methods.sfc.data import semantic_batches

    return semantic_batches(ctx)


def _sfc(**kwargs: Any) -> nn.Module:
    from corr_core.methods.sfc import SFCMethod

    return SFCMethod(**kwargs)


def _sfc_semantic(**kwargs: Any) -> nn.Module:
    from corr_core.methods.sfc import SemanticMethod

    return SemanticMethod(**kwargs)


METHODS["sfc"] = MethodSpec(_sfc, _sfc_batches)
METHODS["sfc_semantic"] = MethodSpec(_sfc_semantic, _sfc_semantic_batches)


def method_spec(name: str) -> MethodSpec:
    """The registered method ``name``.

    Raises:
        ConfigError: unknown method name (the message lists the known ones).
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


def build_method(name: str, **kwargs: Any) -> nn.Module:
    """Builds a registered method with its config section as keyword arguments.

    Raises:
        ConfigError: unknown method name or an argument the method does not take.
    """
    spec = method_spec(name)
    try:
        return spec.build(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"method {name!r}: bad config ({exc})") from exc
