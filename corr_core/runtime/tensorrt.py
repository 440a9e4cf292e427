"""The TensorRT backend: a serialised engine built by :mod:`corr_core.export.tensorrt`.

:class:`TensorRTFeatureModel` loads ``<name>.engine`` and its ``<name>.json`` (what the engine was
built for: ``format`` :data:`ENGINE_FORMAT`, ``tensorrt``, ``compute_capability``, ``precision``,
``profile``, ``feature_stride``, ``channels``, ...). An engine built for another TensorRT version
or GPU is refused with both named (rebuild it with ``corr export tensorrt --rebuild``), never run.
Input and output stay on the GPU: the input tensor's memory is bound as the engine's input, the
output is written into a torch tensor, and the engine runs on torch's current CUDA stream.

Written against TensorRT's Python API (8.6 and 10.x tensor-name I/O, ``execute_async_v3``); it
runs where TensorRT is installed. The JSON checks need no TensorRT (:func:`read_engine_info`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from corr_core.errors import CheckpointError, ShapeMismatchError
from corr_core.io.onnx_format import INPUT_NAME, OUTPUT_NAME
from corr_core.runtime.backends import ENGINE_SUFFIX, BackendUnavailableError, check_device

__all__ = ["ENGINE_FORMAT", "TensorRTFeatureModel", "check_engine_host", "read_engine_info"]

#: The ``format`` written by :mod:`corr_core.export.tensorrt` (the same string there).
ENGINE_FORMAT = "corr-trt/1"
_REQUIRED = ("tensorrt", "compute_capability", "precision", "profile", "feature_stride")


def read_engine_info(engine_path: str | Path) -> dict[str, Any]:
    """The JSON beside an engine.

    Raises:
        CheckpointError: no engine, no or unreadable JSON, another format, or missing entries.
    """
    engine_path = Path(engine_path)
    if engine_path.suffix != ENGINE_SUFFIX:
        raise CheckpointError(f"{engine_path}: a TensorRT engine file ends in {ENGINE_SUFFIX}")
    if not engine_path.is_file():
        raise CheckpointError(f"TensorRT engine not found: {engine_path}")
    meta_path = engine_path.with_suffix(".json")
    try:
        info = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{engine_path}: its description {meta_path} is missing or unreadable ({exc}); "
                              "build engines with `corr export tensorrt`") from exc
    if not isinstance(info, dict) or info.get("format") != ENGINE_FORMAT:
        raise CheckpointError(f"{meta_path}: format {info.get('format') if isinstance(info, dict) else None!r}, "
                              f"expected {ENGINE_FORMAT!r}")
    missing = [k for k in _REQUIRED if k not in info]
    if missing:
        raise CheckpointError(f"{meta_path}: missing {missing}")
    return info


def check_engine_host(info: dict[str, Any], tensorrt_version: str, compute_capability: str, path: Any = "") -> None:
    """Refuses an engine built for another TensorRT version or GPU.

    Raises:
        CheckpointError: naming what the engine was built for and what this host has.
    """
    built = (str(info["tensorrt"]), str(info["compute_capability"]))
    if built != (tensorrt_version, compute_capability):
        raise CheckpointError(
            f"TensorRT engine {path} was built with TensorRT {built[0]} for compute capability {built[1]}; this "
            f"host has TensorRT {tensorrt_version} on compute capability {compute_capability}. Engines do not "
            "move between versions or GPUs: rebuild it here with `corr export tensorrt --rebuild`"
        )


_TORCH_DTYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32}


class TensorRTFeatureModel(nn.Module):
    """A corr feature network as a TensorRT engine, usable wherever a feature model is.

    Args:
        engine_path: ``.engine`` file (with its ``.json``).
        device: ``cuda`` or ``cuda:N``.

    Attributes:
        info: the engine's JSON.

    Raises:
        BackendUnavailableError: no tensorrt package or no CUDA device.
        CheckpointError: a missing or foreign engine, or one built for another TensorRT or GPU.
    """

    def __init__(self, engine_path: str | Path, device: str | torch.device = "cuda") -> None:
        super().__init__()
        self.path = Path(engine_path)
        self.info = read_engine_info(self.path)
        dev = check_device(device)
        if dev.type != "cuda":
            raise BackendUnavailableError(f"TensorRT engine {self.path} runs on a CUDA device, not {device}")
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailableError("backend tensorrt: the tensorrt Python package is not installed") from exc
        major, minor = torch.cuda.get_device_capability(dev)
        check_engine_host(self.info, str(trt.__version__), f"{major}.{minor}", self.path)
        self.device = dev
        self.stride = int(self.info["feature_stride"])
        self.out_channels = int(self.info.get("channels", 0) or 0)
        prof = self.info["profile"]
        self.profile = (tuple(prof["min"]), tuple(prof["opt"]), tuple(prof["max"]))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(dev):
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise CheckpointError(f"{self.path}: TensorRT {trt.__version__} cannot deserialise it")
            self.context = self.engine.create_execution_context()
        self._out_dtype = _TORCH_DTYPES.get(self.engine.get_tensor_dtype(OUTPUT_NAME).name, torch.float32)
        self._in_dtype = _TORCH_DTYPES.get(self.engine.get_tensor_dtype(INPUT_NAME).name, torch.float32)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        lo, _, hi = self.profile
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            raise ShapeMismatchError(
                f"TensorRT engine {self.path}: input {shape} is outside its shape profile {lo}..{hi}; build an "
                "engine whose profile covers the frames (scaled by input_scale) and the cameras of a set: "
                "`corr export tensorrt --profile MIN:OPT:MAX`"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, C, h, w)`` float32 features on the engine's device."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeMismatchError(f"TensorRTFeatureModel: expected (B, 3, H, W) images, got {tuple(x.shape)}")
        shape = tuple(int(v) for v in x.shape)
        self._check_shape(shape)
        x = x.detach().to(self.device, self._in_dtype).contiguous()
        self.context.set_input_shape(INPUT_NAME, shape)
        out = torch.empty(tuple(self.context.get_tensor_shape(OUTPUT_NAME)), dtype=self._out_dtype, device=self.device)
        self.context.set_tensor_address(INPUT_NAME, int(x.data_ptr()))
        self.context.set_tensor_address(OUTPUT_NAME, int(out.data_ptr()))
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT engine {self.path} failed to run on input {shape}")
        return out.float()

    def extra_repr(self) -> str:
        return (f"path={self.path}, precision={self.info['precision']}, tensorrt={self.info['tensorrt']}, "
                f"compute_capability={self.info['compute_capability']}")
