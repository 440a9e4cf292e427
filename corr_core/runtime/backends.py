"""Which inference backend runs the feature network, and whether it can run here.

The backends (``backend`` option of :mod:`corr_core.options`; :func:`corr_core.api.load_backend_model`
loads them):

* ``torch``: the PyTorch network; with ``precision`` fp16 (CUDA) or bf16 (CUDA or CPU) it runs
  under ``torch.autocast`` (:class:`AutocastFeatureModel`) and returns float32 features;
* ``onnxruntime``: the network exported to ONNX (:class:`~corr_core.runtime.onnxruntime.OnnxFeatureModel`);
  on ``cuda`` its CUDA execution provider, and its TensorRT provider first where installed (fp16
  only through that one);
* ``tensorrt``: a native TensorRT engine built from that ONNX
  (:class:`~corr_core.runtime.tensorrt.TensorRTFeatureModel`), fp32, fp16, bf16 or int8.

Asking for something this host lacks (the tensorrt package, a CUDA device, onnxruntime's CUDA
provider) raises :class:`BackendUnavailableError` naming it: never a silent fallback to another
backend. :class:`BackendInfo` is what the node logs and publishes in ``/diagnostics``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.errors import ConfigError

__all__ = [
    "ENGINE_SUFFIX",
    "AutocastFeatureModel",
    "BackendInfo",
    "BackendUnavailableError",
    "check_backend",
    "check_device",
    "resolve_backend",
]

#: Suffix of a serialised TensorRT engine file (``checkpoint: model.engine`` selects tensorrt).
ENGINE_SUFFIX = ".engine"
_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "onnxruntime": ("fp32", "fp16"),
    "tensorrt": ("fp32", "fp16", "bf16", "int8"),
}


class BackendUnavailableError(ConfigError):
    """The backend (or device, or execution provider) asked for is not present on this host."""


@dataclass
class BackendInfo:
    """What runs the feature network, for logs and diagnostics.

    Attributes:
        backend: ``torch``, ``onnxruntime`` or ``tensorrt``.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        device: torch device string.
        detail: backend specifics: onnxruntime's providers in use, the engine file, ...
    """

    backend: str
    precision: str
    device: str
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``"onnxruntime fp32 on cpu (providers CPUExecutionProvider)"``."""
        extra = ", ".join(f"{k} {v}" for k, v in self.detail.items() if v not in (None, "", []))
        return f"{self.backend} {self.precision} on {self.device}" + (f" ({extra})" if extra else "")


def resolve_backend(backend: str, checkpoint: str | Path | None) -> str:
    """The backend that runs ``checkpoint``: ``auto`` picks onnxruntime for a ``.onnx`` file, tensorrt
    for a ``.engine`` file and torch otherwise.

    Raises:
        ConfigError: an unknown backend, or a file the backend cannot run (an ONNX file on torch, an
            engine on anything but tensorrt).
    """
    suffix = Path(str(checkpoint)).suffix if checkpoint not in (None, "") else ""
    if backend == "auto":
        return {".onnx": "onnxruntime", ENGINE_SUFFIX: "tensorrt"}.get(suffix, "torch")
    if backend not in _PRECISIONS:
        raise ConfigError(f"backend must be one of auto, {', '.join(_PRECISIONS)}; got {backend!r}")
    if backend == "torch" and suffix == ".onnx":
        raise ConfigError(f"checkpoint {checkpoint} is an ONNX file: run it with backend onnxruntime (or "
                          "tensorrt), or give the corr checkpoint it was exported from for backend torch")
    if suffix == ENGINE_SUFFIX and backend != "tensorrt":
        raise ConfigError(f"checkpoint {checkpoint} is a TensorRT engine: it runs only with backend tensorrt")
    return backend


def check_device(device: str | torch.device) -> torch.device:
    """The torch device, checked: ``cuda[:N]`` needs a CUDA device N here.

    Raises:
        BackendUnavailableError: no CUDA device (or not that many). ConfigError: not a device string.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {device!r} is not a torch device (cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BackendUnavailableError(
                f"device {device}: this host has no CUDA device (torch {torch.__version__}, "
                "torch.cuda.is_available() is False); use device cpu"
            )
        if (dev.index or 0) >= count:
            raise BackendUnavailableError(f"device {device}: this host has {count} CUDA device(s) (cuda:0..{count - 1})")
    elif dev.type != "cpu":
        raise ConfigError(f"device {device!r}: corr runs on cpu or cuda[:N]")
    return dev


def _onnxruntime_providers() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailableError("backend onnxruntime: the onnxruntime package is not installed "
                                      "(pip install onnxruntime, or onnxruntime-gpu for CUDA)")
    import onnxruntime as ort

    return list(ort.get_available_providers())


def check_backend(backend: str, precision: str, device: str | torch.device) -> None:
    """Checks that ``backend`` can run at ``precision`` on ``device`` here (call after
    :func:`resolve_backend`).

    Raises:
        BackendUnavailableError: the backend's package, the CUDA device or the execution provider is
            absent (the message names it). ConfigError: a precision the backend does not run, or
            tensorrt on the CPU.
    """
    if backend not in _PRECISIONS:
        raise ConfigError(f"backend must be one of {', '.join(_PRECISIONS)} once resolved; got {backend!r}")
    if precision not in _PRECISIONS[backend]:
        raise ConfigError(f"backend {backend} runs precision {', '.join(_PRECISIONS[backend])}; got {precision!r}"
                          + ("; int8 needs backend tensorrt" if precision == "int8" else ""))
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if backend == "tensorrt":
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailableError(
                "backend tensorrt: the tensorrt Python package is not installed on this host (it comes with "
                "NVIDIA TensorRT: pip install tensorrt on an x86 GPU host, JetPack on a Jetson); use backend "
                "onnxruntime or torch"
            )
        if dev.type != "cuda":
            raise ConfigError(f"backend tensorrt runs on a CUDA device; device is {device}")
    check_device(dev)
    if backend == "torch" and precision == "fp16" and dev.type != "cuda":
        raise ConfigError("backend torch: precision fp16 (autocast) needs a CUDA device; on the CPU use bf16 or fp32")
    if backend == "torch" and precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailableError(f"backend torch: {torch.cuda.get_device_name(dev)} does not support bf16")
    if backend == "onnxruntime":
        available = _onnxruntime_providers()
        if dev.type == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendUnavailableError(
                f"backend onnxruntime on {device}: this onnxruntime has no CUDAExecutionProvider (available: "
                f"{available}); install onnxruntime-gpu or use device cpu"
            )
        if precision == "fp16" and (dev.type != "cuda" or "TensorrtExecutionProvider" not in available):
            raise BackendUnavailableError(
                "backend onnxruntime: precision fp16 runs through its TensorrtExecutionProvider on a CUDA device "
                f"(device {device}, available providers: {available}); use fp32, or backend tensorrt"
            )


class AutocastFeatureModel(nn.Module):
    """A feature network run under ``torch.autocast`` (fp16 or bf16); returns float32 features.

    Args:
        model: the float32 network.
        precision: ``fp16`` or ``bf16``.
        device_type: ``cuda`` or ``cpu``.
    """

    def __init__(self, model: nn.Module, precision: str, device_type: str) -> None:
        super().__init__()
        if precision not in ("fp16", "bf16"):
            raise ConfigError(f"AutocastFeatureModel: precision must be fp16 or bf16, got {precision!r}")
        self.net = model
        self.precision = precision
        self.device_type = device_type
        self.dtype = torch.float16 if precision == "fp16" else torch.bfloat16

    def set_lambda(self, lam: float) -> None:
        """Forwards SFC's fusion weight to a fused network (see ``FusedFeatures``)."""
        inner = getattr(self.net, "set_lambda", None)
        if callable(inner):
            inner(lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, C, h, w)`` float32."""
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(x)
        return out.float()

    def extra_repr(self) -> str:
        return f"precision={self.precision}, device_type={self.device_type}"
