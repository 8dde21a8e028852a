"""Command-line options shared by several `trivec` commands (typer annotations, defined once).

They live apart from `trivec.cli` so that the command modules can import them at module level: typer reads
the annotations from a command's module globals.
"""

from __future__ import annotations

from typing import Annotated

import typer

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
