"""The onnxruntime backend: an ONNX file exported by :func:`corr_core.export.export_onnx`.

The file's input/output names and format tag come from :mod:`corr_core.io.onnx_format`. Files
exported with a dynamic batch axis run a whole batch (the cameras of a set) in one call; older
files with a batch of one run it frame by frame. On the CPU the input is handed to onnxruntime
as a view of the torch tensor and the output comes back as a view of onnxruntime's array (no
copies); on CUDA the input is bound in place on the device (I/O binding).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from corr_core.errors import CheckpointError, ShapeMismatchError
from corr_core.io.onnx_format import INPUT_NAME, ONNX_FORMAT, OUTPUT_NAME
from corr_core.runtime.backends import BackendUnavailableError

log = logging.getLogger(__name__)

__all__ = ["OnnxFeatureModel", "onnx_providers"]


def onnx_providers(device: str | torch.device, precision: str = "fp32",
                   trt_cache_dir: str | Path | None = None) -> list[Any]:
    """onnxruntime execution providers for a torch device string, in order of preference.

    ``cpu``: the CPU provider. ``cuda[:N]``: onnxruntime's TensorRT provider first where installed
    (fp16 when asked; its engines cached in ``trt_cache_dir``), then CUDA, then CPU for the nodes
    those do not take.

    Raises:
        BackendUnavailableError: ``cuda`` without a CUDAExecutionProvider, or fp16 without the
            TensorrtExecutionProvider.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    dev = torch.device(device)
    if dev.type != "cuda":
        if precision != "fp32":
            raise BackendUnavailableError(f"backend onnxruntime on {device}: precision {precision} needs the "
                                          f"TensorrtExecutionProvider on a CUDA device (available: {available})")
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailableError(
            f"device {device}: this onnxruntime has no CUDAExecutionProvider (available: {available}); "
            "install onnxruntime-gpu or use device cpu"
        )
    index = dev.index or 0
    providers: list[Any] = []
    if "TensorrtExecutionProvider" in available:
        trt: dict[str, Any] = {"device_id": index, "trt_fp16_enable": precision == "fp16"}
        if trt_cache_dir is not None:
            Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir))
        providers.append(("TensorrtExecutionProvider", trt))
    elif precision == "fp16":
        raise BackendUnavailableError(f"backend onnxruntime: precision fp16 needs the TensorrtExecutionProvider "
                                      f"(available: {available})")
    providers += [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return providers


class OnnxFeatureModel(nn.Module):
    """A corr ONNX feature network run by onnxruntime, usable wherever a feature model is.

    Args:
        path: ``.onnx`` file written by ``corr export onnx``.
        device: ``"cpu"`` or ``"cuda[:N]"`` (needs onnxruntime-gpu).
        threads: intra-op threads (0: onnxruntime's default).
        precision: ``fp32``, or ``fp16`` through onnxruntime's TensorRT provider.
        trt_cache_dir: where onnxruntime's TensorRT provider caches its engines (None: not cached).

    Attributes:
        metadata: the file's corr metadata (``arch``, ``feature_stride``, ``channels``, ...).
        batched: whether the graph takes a batch of any size (else frames go one by one).
        providers: the execution providers the session uses.

    Raises:
        CheckpointError: missing or unreadable file, or an ONNX file corr did not write.
        BackendUnavailableError: the device or precision needs a provider this onnxruntime lacks.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", threads: int = 0,
                 precision: str = "fp32", trt_cache_dir: str | Path | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {self.path}")
        self.device = torch.device(device)
        providers = onnx_providers(device, precision, trt_cache_dir)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = int(threads)
        # onnxruntime's worker threads otherwise spin for a while after each run, taking the cores
        # from the propagation that follows it (on a 2-core CPU: 1.6x slower propagation)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{self.path}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from exc
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if meta.get("corr_format") != ONNX_FORMAT:
            raise CheckpointError(
                f"{self.path}: not an ONNX model exported by corr (corr_format {meta.get('corr_format')!r}, "
                f"expected {ONNX_FORMAT!r}); export one with `corr export onnx CHECKPOINT --out FILE.onnx`"
            )
        self.metadata = meta
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise CheckpointError(
                f"{self.path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, found {sorted(inputs)} "
                f"and {sorted(outputs)}"
            )
        self._input, self._output = INPUT_NAME, OUTPUT_NAME
        self.batched = not isinstance(inputs[INPUT_NAME].shape[0], int)
        self.providers = list(self.session.get_providers())
        self.precision = precision
        self.out_channels = int(meta.get("channels", 0))
        self.stride = int(meta.get("feature_stride", 8))

    def _run_cpu(self, batch: np.ndarray) -> np.ndarray:
        if self.batched or len(batch) == 1:
            return self.session.run([self._output], {self._input: batch})[0]
        outs = [self.session.run([self._output], {self._input: batch[i : i + 1]})[0] for i in range(len(batch))]
        return np.concatenate(outs)

    def _run_bound(self, x: torch.Tensor) -> torch.Tensor:
        """One call with the input bound in place on the CUDA device (no host round trip for it)."""
        binding = self.session.io_binding()
        index = x.device.index or 0
        binding.bind_input(self._input, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self._output, "cuda", index)
        if x.is_cuda:
            torch.cuda.current_stream(x.device).synchronize()
        self.session.run_with_iobinding(binding)
        return torch.from_numpy(binding.copy_outputs_to_cpu()[0]).to(x.device, non_blocking=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, C, h, w)`` float32 features on ``x``'s device."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeMismatchError(f"OnnxFeatureModel: expected (B, 3, H, W) images, got {tuple(x.shape)}")
        x = x.detach()
        if x.is_cuda and "CUDAExecutionProvider" in self.providers:
            x = x.to(torch.float32).contiguous()
            if self.batched or len(x) == 1:
                return self._run_bound(x)
            return torch.cat([self._run_bound(x[i : i + 1]) for i in range(len(x))])
        batch = x.to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self._run_cpu(batch)).to(x.device)

    def extra_repr(self) -> str:
        return (f"path={self.path}, arch={self.metadata.get('arch')}, providers={self.providers}, "
                f"batched={self.batched}")
