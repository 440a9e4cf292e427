"""The onnxruntime backend: an ONNX file exported by :func:`corr_core.export.export_onnx`.

The file's input/output names and format tag come from :mod:`corr_core.io.onnx_format`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from corr_core.errors import CheckpointError, ShapeMismatchError
from corr_core.io.onnx_format import INPUT_NAME, ONNX_FORMAT, OUTPUT_NAME

log = logging.getLogger(__name__)


def onnx_providers(device: str | torch.device) -> list[str]:
    """onnxruntime execution providers for a torch device string: CUDA first where asked and present."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise CheckpointError(
                f"device {device}: this onnxruntime has no CUDAExecutionProvider (available: {available}); "
                "install onnxruntime-gpu or use device cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxFeatureModel(nn.Module):
    """A corr ONNX feature network run by onnxruntime, usable wherever a feature model is.

    Args:
        path: ``.onnx`` file written by ``corr export onnx``.
        device: ``"cpu"`` or ``"cuda[:N]"`` (needs onnxruntime-gpu).
        threads: intra-op threads (0: onnxruntime's default).

    Attributes:
        metadata: the file's corr metadata (``arch``, ``feature_stride``, ``channels``, ...).

    Raises:
        CheckpointError: missing or unreadable file, or an ONNX file corr did not write.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", threads: int = 0) -> None:
        super().__init__()
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"ONNX model not found: {self.path}")
        providers = onnx_providers(device)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = int(threads)
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
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise CheckpointError(
                f"{self.path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, found {sorted(inputs)} "
                f"and {sorted(outputs)}"
            )
        self._input, self._output = INPUT_NAME, OUTPUT_NAME
        self.out_channels = int(meta.get("channels", 0))
        self.stride = int(meta.get("feature_stride", 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``(B, C, h, w)`` float32 features on ``x``'s device."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeMismatchError(f"OnnxFeatureModel: expected (B, 3, H, W) images, got {tuple(x.shape)}")
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        outs = [self.session.run([self._output], {self._input: batch[i : i + 1]})[0] for i in range(len(batch))]
        return torch.from_numpy(np.concatenate(outs)).to(x.device)

    def extra_repr(self) -> str:
        return f"path={self.path}, arch={self.metadata.get('arch')}, providers={self.session.get_providers()}"
