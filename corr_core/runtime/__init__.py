"""Running the feature network and the tracking pipeline, with no ROS.

Inference backends behind one interface, a ``torch.nn.Module`` mapping ``(B, 3, H, W)`` float RGB
in [0, 1] to ``(B, C, H/stride, W/stride)`` features, so the tracker and the node run any of them:

* PyTorch: :func:`corr_core.api.load_feature_model` on a corr checkpoint;
* onnxruntime: :class:`OnnxFeatureModel` on an ONNX file written by ``corr export onnx``.

The pipeline of ``corr_node`` and ``corr bag process``: :mod:`~corr_core.runtime.frames` (frame
sizes), :mod:`~corr_core.runtime.processing` (one synchronised set -> labels),
:mod:`~corr_core.runtime.drops` (drop counts, timings).

Names are imported lazily, so ``import corr_core.runtime.frames`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "OnnxFeatureModel": "corr_core.runtime.onnxruntime",
    "onnx_providers": "corr_core.runtime.onnxruntime",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corr_core.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
