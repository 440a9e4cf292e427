"""Inference backends behind one interface: a ``torch.nn.Module`` mapping ``(B, 3, H, W)`` float RGB
in [0, 1] to ``(B, C, H/stride, W/stride)`` features, so the tracker and the node run any of them.

* PyTorch: :func:`corr_core.api.load_feature_model` on a corr checkpoint.
* onnxruntime: :class:`OnnxFeatureModel` on an ONNX file written by ``corr export onnx``.

TensorRT is not implemented (not installable on the development machines).
"""

from corr_core.runtime.onnxruntime import OnnxFeatureModel, onnx_providers

__all__ = ["OnnxFeatureModel", "onnx_providers"]
