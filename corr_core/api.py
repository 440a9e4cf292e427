"""Entry points that put the pieces together: feature models from checkpoints, trackers, exports.

The CLI, the evaluation code and the ROS node all build their models here, so a checkpoint
loads (and fails) the same way everywhere. This module sits above the others: it imports
:mod:`corr_core.runtime` (ONNX files) and :mod:`corr_core.export`, and neither imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.errors import CheckpointError, ConfigError
from corr_core.io.checkpoint import (
    check_feature_checkpoint,
    load_checkpoint,
    load_module_state,
    weights_sha256,
)
from corr_core.models import BACKBONES, build_backbone
from corr_core.options import ModelSource

DEFAULT_ARCH = "resnet18_s8"
PACKAGED_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "checkpoints" / "fc_resnet18_s8"


def packaged_checkpoint() -> Path | None:
    """The FC checkpoint shipped with the package (``training/fc_cpu.yaml`` reproduces it), if any."""
    return PACKAGED_CHECKPOINT if PACKAGED_CHECKPOINT.with_suffix(".safetensors").is_file() else None


def load_feature_model(
    checkpoint: str | Path | None,
    device: str | torch.device = "cpu",
    random_init_seed: int | None = None,
    arch: str = DEFAULT_ARCH,
) -> tuple[nn.Module, dict[str, Any]]:
    """Builds the feature network of a checkpoint (or a randomly initialised one).

    Args:
        checkpoint: path to a corr checkpoint (``.safetensors`` with its ``.json``), an ONNX file
            written by ``corr export onnx`` (``.onnx``: run by onnxruntime), or None together with
            ``random_init_seed`` for a randomly initialised ``arch``.
        device: where the model goes.
        random_init_seed: seed for a random initialisation (the baseline of the papers).
        arch: architecture for random initialisation.

    Returns:
        ``(model in eval mode, metadata)``.

    Raises:
        CheckpointError: missing, truncated, foreign, or mismatching checkpoint, or a training
            state (a run's ``last.*``) instead of a feature network.
    """
    if checkpoint in (None, ""):
        if random_init_seed is None:
            raise CheckpointError("no checkpoint given (pass a checkpoint path, or ask for a random initialisation)")
        torch.manual_seed(int(random_init_seed))
        model = build_backbone(arch)
        meta: dict[str, Any] = {"arch": arch, "method": "random-init", "seed": int(random_init_seed)}
    elif Path(checkpoint).suffix == ".onnx":
        from corr_core.runtime import OnnxFeatureModel

        onnx_model = OnnxFeatureModel(checkpoint, device=device)
        return onnx_model.eval(), {**onnx_model.metadata, "backend": "onnxruntime"}
    else:
        tensors, meta = load_checkpoint(checkpoint)
        check_feature_checkpoint(meta, checkpoint)
        name = meta.get("arch")
        if name not in BACKBONES:
            raise CheckpointError(f"{checkpoint}: unknown architecture {name!r} (known: {sorted(BACKBONES)})")
        model = build_backbone(name)
        load_module_state(model, tensors, "backbone.", str(checkpoint))
    return model.eval().to(device), meta


def load_model_source(source: ModelSource) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_feature_model` for a :class:`~corr_core.options.ModelSource` (command-line flags)."""
    checkpoint = None if source.checkpoint is None else str(source.checkpoint)
    return load_feature_model(checkpoint, device=source.device, random_init_seed=source.random_init_seed)


def export_checkpoint_onnx(
    checkpoint: str | Path | None,
    out: str | Path,
    random_init_seed: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Loads the feature network of ``checkpoint`` and exports it with :func:`corr_core.export.export_onnx`.

    Args:
        checkpoint: corr checkpoint path, or None with ``random_init_seed``.
        out: destination ``.onnx`` file.
        random_init_seed: export a randomly initialised network (tests, baselines).
        **kwargs: ``size``, ``opset``, ``atol`` of :func:`~corr_core.export.export_onnx`.

    Returns:
        The export report (path, metadata, parity differences).

    Raises:
        CheckpointError: bad checkpoint (an ONNX file cannot be exported again).
        ExportError: the export or its parity check failed.
    """
    from corr_core.export import export_onnx

    if checkpoint not in (None, "") and Path(checkpoint).suffix == ".onnx":
        raise CheckpointError(f"{checkpoint}: is an ONNX file already; export the corr checkpoint it came from")
    model, meta = load_feature_model(checkpoint, device="cpu", random_init_seed=random_init_seed)
    if checkpoint in (None, ""):
        provenance = {"source": "random-init", "source_sha256": ""}
    else:
        provenance = {"source": str(checkpoint), "source_sha256": weights_sha256(checkpoint)}
    return export_onnx(model, out, metadata={**meta, **provenance}, **kwargs)


def build_tracker(
    checkpoint: str | Path | None,
    propagation: dict[str, Any] | None = None,
    device: str = "cpu",
    random_init_seed: int | None = None,
):
    """A :class:`~corr_core.propagation.tracker.Tracker` on the features of ``checkpoint``.

    Args:
        checkpoint: checkpoint path, or None with ``random_init_seed`` (random-init baseline).
        propagation: :class:`~corr_core.propagation.config.PropagationConfig` fields (topk,
            context, radius, temperature, ...); defaults otherwise.
        device: torch device string.
        random_init_seed: seed of a random initialisation (with ``checkpoint`` None).
    """
    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    try:
        cfg = PropagationConfig(**(propagation or {}))
    except TypeError as exc:
        raise ConfigError(f"bad propagation settings {propagation}: {exc}") from exc
    model, _ = load_feature_model(checkpoint, device=device, random_init_seed=random_init_seed)
    return Tracker(model, cfg, device=device)
