"""Exporting models to other runtimes: `export_onnx` (one ONNX graph with the dense, sparse and ColBERT outputs)."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.export.onnx import DEFAULT_OPSET, ExportError, export_onnx

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DEFAULT_OPSET": "trivec.export.onnx",
        "ExportError": "trivec.export.onnx",
        "export_onnx": "trivec.export.onnx",
    },
)

__all__ = ["DEFAULT_OPSET", "ExportError", "export_onnx"]
