"""Command-line options shared by several `trivec` commands (typer annotations, defined once).

They live apart from `trivec.cli` so that the command modules can import them at module level: typer reads
the annotations from a command's module globals.
"""

from __future__ import annotations

from typing import Annotated

import typer

from trivec.inference.forward import BACKENDS, Backend

QueryPromptOption = Annotated[
    str | None,
    typer.Option(
        "--query-prompt",
        help="Text put before every query instead of the model's 'query' prompt ('' for none).",
    ),
]
DocumentPromptOption = Annotated[
    str | None,
    typer.Option(
        "--document-prompt",
        help="Text put before every passage instead of the model's 'document' prompt ('' for none).",
    ),
]


def prompt_overrides(query_prompt: str | None, document_prompt: str | None) -> dict[str, str] | None:
    """`{"query": ..., "document": ...}` of the options given (None when neither is): for
    `Embedder.from_pretrained(..., prompts=...)`, where they replace the model's prompts of those roles."""
    given = {
        name: value
        for name, value in (("query", query_prompt), ("document", document_prompt))
        if value is not None
    }
    return given or None


_BACKEND_HELP = (
    "Encoder runtime: torch (default) or onnx (the model directory's onnx/model.onnx, written by "
    "`trivec export onnx`; runs in onnxruntime, same outputs)."
)
BackendOption = Annotated[str, typer.Option("--backend", "--model-backend", help=_BACKEND_HELP)]
# `trivec index build`, where --backend names the index store (embedded / qdrant)
ModelBackendOption = Annotated[str, typer.Option("--model-backend", help=_BACKEND_HELP)]
OnnxFileOption = Annotated[
    str | None,
    typer.Option(
        "--onnx-file",
        help="With --backend onnx: the graph to run, a file in the model's onnx/ folder (default model.onnx; "
        "model_int8.onnx: the int8 graph of `trivec export onnx --quantize int8`).",
    ),
]


def check_backend_options(backend: str, onnx_file: str | None, option: str = "--backend") -> Backend:
    """The backend for `Embedder.from_pretrained(..., backend=, onnx_file=)`, checked: torch or onnx, and
    --onnx-file only with onnx. `option`: the flag's name in messages."""
    from trivec.errors import InputError

    if backend not in BACKENDS:
        raise InputError(f"{option} must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if onnx_file is not None and backend != "onnx":
        raise InputError(f"--onnx-file applies to {option} onnx")
    return backend  # type: ignore[return-value]
