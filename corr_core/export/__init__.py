"""Exporting feature networks for deployment: ONNX (checked against onnxruntime).

:func:`export_onnx` takes a model and its metadata; :func:`corr_core.api.export_checkpoint_onnx`
loads a checkpoint and exports it. The file format both this package and :mod:`corr_core.runtime`
follow is :mod:`corr_core.io.onnx_format`.
"""

from corr_core.export.onnx import ONNX_FORMAT, export_onnx, onnx_metadata

__all__ = ["ONNX_FORMAT", "export_onnx", "onnx_metadata"]
