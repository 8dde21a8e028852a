"""`trivec export onnx` (heavy imports stay inside the command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import clean_errors


def register(app: typer.Typer) -> None:
    """Add the `export` command group to the `trivec` app."""

    export_app = typer.Typer(
        name="export", help="Export a model for other runtimes (ONNX).", no_args_is_help=True
    )
    app.add_typer(export_app, name="export")

    @export_app.command("onnx")
    @clean_errors
    def onnx(
        output: Annotated[
            Path,
            typer.Option("--output", "-o", help="New model directory: the model's files + onnx/model.onnx."),
        ],
        model: Annotated[
            str, typer.Option("--model", "-m", help="Model directory, hub id, or 'default'.")
        ] = "default",
        outputs: Annotated[
            str | None,
            typer.Option(
                help="Outputs of the graph: comma-separated dense,sparse,colbert (default: all the model has)."
            ),
        ] = None,
        quantize: Annotated[
            str | None,
            typer.Option(help="int8: also write onnx/model_int8.onnx (dynamic int8 weights)."),
        ] = None,
        opset: Annotated[int, typer.Option(help="ONNX opset, 14 to 20.")] = 17,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace an existing non-empty --output directory.")
        ] = False,
    ) -> None:
        """Export a model to ONNX: one graph with its dense, sparse and ColBERT outputs.

        --output becomes a complete model directory that also loads in torch; `trivec encode --backend onnx
        --model OUTPUT` and sentence-transformers' backend="onnx" run onnx/model.onnx."""
        from trivec.export.onnx import (
            check_opset,
            check_quantize,
            check_target,
            export_onnx,
            parse_outputs,
        )
        from trivec.inference.onnx_backend import ONNX_DIR, ONNX_FILE, ONNX_INT8_FILE

        check_opset(opset)
        check_quantize(quantize)
        parse_outputs(outputs)
        check_target(output, overwrite)  # before the model loads
        written = export_onnx(
            model, output, outputs=outputs, quantize=quantize, opset=opset, overwrite=overwrite
        )
        files = [f"{ONNX_DIR}/{ONNX_FILE}"] + ([f"{ONNX_DIR}/{ONNX_INT8_FILE}"] if quantize else [])
        typer.echo(f"exported {model} → {written} ({', '.join(files)})", err=True)
