"""Entry points that put the pieces together: feature models from checkpoints, trackers, exports.

The CLI, the evaluation code and the ROS node all build their models here, so a checkpoint
loads (and fails) the same way everywhere, on the backend asked for (:func:`load_backend_model`). This module sits above the others: it imports
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


def load_backend_model(
    checkpoint: str | Path | None,
    backend: str = "auto",
    precision: str = "fp32",
    device: str = "cpu",
    random_init_seed: int | None = None,
    arch: str = DEFAULT_ARCH,
    cache_dir: str | Path | None = None,
    threads: int = 0,
    log: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The feature network of ``checkpoint`` on an inference backend (:mod:`corr_core.runtime.backends`).

    * ``torch``: :func:`load_feature_model`; fp16/bf16 under ``torch.autocast``;
    * ``onnxruntime``: the ``.onnx`` file given, or the checkpoint (or random init) exported once
      into the cache (:func:`corr_core.export.cache.cached_onnx`);
    * ``tensorrt``: the ``.engine`` file given, or the cached engine of that ONNX for this host,
      precision and the default shape profile (built when absent, never rebuilt here:
      :func:`corr_core.export.tensorrt.ensure_engine`);
    * ``auto``: by the file (``.onnx`` -> onnxruntime, ``.engine`` -> tensorrt), else torch.

    Args:
        checkpoint: corr checkpoint, ``.onnx`` or ``.engine`` file, or None with ``random_init_seed``.
        backend: ``auto``, ``torch``, ``onnxruntime`` or ``tensorrt``.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` (where the backend takes it).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        random_init_seed: a random initialisation of ``arch`` (with ``checkpoint`` None).
        arch: architecture of a random initialisation.
        cache_dir: cache of exports and engines (default :func:`corr_core.export.cache.cache_root`).
        threads: onnxruntime intra-op threads (0: its default).
        log: called with a line when something is exported or built.

    Returns:
        ``(model in eval mode, metadata)``; the metadata holds ``backend``, ``precision`` and
        ``backend_detail`` (onnxruntime's providers, the ONNX or engine file).

    Raises:
        BackendUnavailableError: the backend, the CUDA device or the provider is absent here.
        ConfigError: a precision the backend does not run, a file the backend cannot run.
        CheckpointError: as :func:`load_feature_model`. ExportError: a failed export or build.
    """
    from corr_core.runtime.backends import AutocastFeatureModel, check_backend, resolve_backend

    name = resolve_backend(backend, checkpoint)
    check_backend(name, precision, device)
    suffix = Path(str(checkpoint)).suffix if checkpoint not in (None, "") else ""
    if name == "torch":
        model, meta = load_feature_model(checkpoint, device=device, random_init_seed=random_init_seed, arch=arch)
        if precision != "fp32":
            model = AutocastFeatureModel(model, precision, torch.device(device).type).eval()
        detail: dict[str, Any] = {}
    else:
        from corr_core.export.cache import cache_root

        root = cache_root(cache_dir)
        onnx = checkpoint if suffix in (".onnx", ".engine") else cached_checkpoint_onnx(
            checkpoint, random_init_seed, arch, root, log)
        if name == "onnxruntime":
            from corr_core.runtime.onnxruntime import OnnxFeatureModel

            model = OnnxFeatureModel(onnx, device=device, threads=threads, precision=precision,
                                     trt_cache_dir=root / "onnxruntime_trt")
            meta = dict(model.metadata)
            detail = {"providers": [p if isinstance(p, str) else p[0] for p in model.providers], "onnx": str(onnx)}
        else:
            from corr_core.export.tensorrt import DEFAULT_PROFILE, ensure_engine
            from corr_core.runtime.tensorrt import TensorRTFeatureModel

            engine = onnx if suffix == ".engine" else ensure_engine(onnx, precision, DEFAULT_PROFILE, device,
                                                                    root, log=log)
            model = TensorRTFeatureModel(engine, device=device)
            meta = {k: model.info.get(k) for k in ("arch", "source", "source_sha256")}
            meta.update(feature_stride=str(model.stride), channels=str(model.out_channels))
            detail = {"engine": str(engine), "tensorrt": model.info["tensorrt"]}
    return model.eval(), {**meta, "backend": name, "precision": precision, "backend_detail": detail}


def cached_checkpoint_onnx(checkpoint: str | Path | None, random_init_seed: int | None = None,
                           arch: str = DEFAULT_ARCH, cache_dir: str | Path | None = None, log: Any = None) -> Path:
    """The cached ONNX export of a corr checkpoint or random initialisation (exported, and checked,
    on first use: :func:`corr_core.export.cache.cached_onnx`)."""
    from corr_core.export.cache import cached_onnx

    model, meta = load_feature_model(checkpoint, device="cpu", random_init_seed=random_init_seed, arch=arch)
    if checkpoint in (None, ""):
        provenance = {"source": "random-init", "source_sha256": ""}
    else:
        provenance = {"source": str(checkpoint), "source_sha256": weights_sha256(checkpoint)}
    return cached_onnx(model, {**meta, **provenance}, cache_dir, log=log)


def build_tracker(
    checkpoint: str | Path | None,
    propagation: dict[str, Any] | None = None,
    device: str = "cpu",
    random_init_seed: int | None = None,
    backend: str = "auto",
    precision: str = "fp32",
):
    """A :class:`~corr_core.propagation.tracker.Tracker` on the features of ``checkpoint``.

    Args:
        checkpoint: checkpoint path, or None with ``random_init_seed`` (random-init baseline).
        propagation: :class:`~corr_core.propagation.config.PropagationConfig` fields (topk,
            context, radius, temperature, ...); defaults otherwise.
        device: torch device string.
        random_init_seed: seed of a random initialisation (with ``checkpoint`` None).
        backend: inference backend (:func:`load_backend_model`).
        precision: network precision (:func:`load_backend_model`).
    """
    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    try:
        cfg = PropagationConfig(**(propagation or {}))
    except TypeError as exc:
        raise ConfigError(f"bad propagation settings {propagation}: {exc}") from exc
    model, _ = load_backend_model(checkpoint, backend, precision, device=device, random_init_seed=random_init_seed)
    return Tracker(model, cfg, device=device)


def build_camera_trackers(
    cameras: list[str],
    checkpoint: str | Path | None,
    propagation: dict[str, Any] | None = None,
    device: str = "cpu",
    random_init_seed: int | None = None,
    backend: str = "auto",
    precision: str = "fp32",
    log: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One :class:`~corr_core.propagation.tracker.Tracker` per camera, all on one network (loaded
    once with :func:`load_backend_model`): how ``corr_node`` and ``corr bag process`` build them, so
    both give the same labels.

    Returns:
        ``({camera: tracker}, the network's metadata)`` (``backend``, ``precision``, ``backend_detail``, ...).

    Raises:
        ConfigError: bad propagation settings, or as :func:`load_backend_model`.
    """
    from corr_core.propagation.config import PropagationConfig
    from corr_core.propagation.tracker import Tracker

    try:
        cfg = PropagationConfig(**(propagation or {}))
    except TypeError as exc:
        raise ConfigError(f"bad propagation settings {propagation}: {exc}") from exc
    model, meta = load_backend_model(checkpoint, backend, precision, device=device,
                                     random_init_seed=random_init_seed, log=log)
    return {cam: Tracker(model, cfg, device=device) for cam in cameras}, meta
