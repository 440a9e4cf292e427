"""The contract between ONNX files written by :mod:`corr_core.export` and read by :mod:`corr_core.runtime`.

Both sides import these names from here (neither imports the other). An ONNX feature network
written by corr has one input, :data:`INPUT_NAME`, ``(1, 3, H, W)`` float32 RGB in [0, 1]
(normalisation is inside the graph), and one output, :data:`OUTPUT_NAME`, ``(1, C, H/stride,
W/stride)`` float32, with dynamic height and width. Its ``metadata_props`` carry
``corr_format`` = :data:`ONNX_FORMAT` plus the entries of :data:`METADATA_KEYS`.
"""

from __future__ import annotations

__all__ = ["INPUT_NAME", "METADATA_KEYS", "ONNX_FORMAT", "OUTPUT_NAME"]

#: Value of the ``corr_format`` metadata entry of every ONNX file corr writes.
ONNX_FORMAT = "corr-onnx/1"
#: Name of the graph input: ``(1, 3, H, W)`` float32 RGB in [0, 1].
INPUT_NAME = "image"
#: Name of the graph output: ``(1, C, H/stride, W/stride)`` float32 features.
OUTPUT_NAME = "features"
#: Metadata entries written with every export (all strings), besides ``corr_format``.
METADATA_KEYS = ("arch", "method", "feature_stride", "channels", "source", "source_sha256", "input", "output")
