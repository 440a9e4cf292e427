"""Entry points that put the pieces together: feature models from checkpoints, trackers.

The CLI, the evaluation code and the ROS node all build their models here, so a checkpoint
loads (and fails) the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.errors import CheckpointError, ConfigError
from corr_core.io.checkpoint import load_checkpoint, load_module_state
from corr_core.models import BACKBONES, build_backbone

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
        CheckpointError: missing, truncated, foreign, or mismatching checkpoint.
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
        name = meta.get("arch")
        if name not in BACKBONES:
            raise CheckpointError(f"{checkpoint}: unknown architecture {name!r} (known: {sorted(BACKBONES)})")
        model = build_backbone(name)
        load_module_state(model, tensors, "backbone.", str(checkpoint))
    return model.eval().to(device), meta


def build_tracker(
    checkpoint: str | Path | None,
    propagation: dict[str, Any] | None = None,
    device: str = "cpu",
    random_init_seed: int | None = None,
):
    """A :class:`~corr_core.propagation.tracker.Tracker` on the features of ``checkpoint``.

    Args:
        checkpoint: checkpoint path, or None with ``random_init_seed`` (random-init baseline).
        propagation: :class:`~corr_core.propagation.crw.PropagationConfig` fields (topk, context,
            radius, temperature, ...); defaults otherwise.
        device: torch device string.
    """
    from corr_core.propagation.crw import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    try:
        cfg = PropagationConfig(**(propagation or {}))
    except TypeError as exc:
        raise ConfigError(f"bad propagation settings {propagation}: {exc}") from exc
    model, _ = load_feature_model(checkpoint, device=device, random_init_seed=random_init_seed)
    return Tracker(model, cfg, device=device)
