"""Exporting feature networks for deployment: ONNX (checked against onnxruntime)."""

from corr_core.export.onnx import ONNX_FORMAT, export_onnx, onnx_metadata

__all__ = ["ONNX_FORMAT", "export_onnx", "onnx_metadata"]
