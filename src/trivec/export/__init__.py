"""Exporting models to other runtimes: `export_onnx` (one ONNX graph with the dense, sparse and ColBERT outputs)."""

from trivec.export.onnx import DEFAULT_OPSET, ExportError, export_onnx

__all__ = ["DEFAULT_OPSET", "ExportError", "export_onnx"]
