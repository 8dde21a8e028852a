"""`trivec rerank`: cross-encoder scores of query/passage pairs (FlagReranker's `compute_score`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import check_positive, clean_errors

RerankModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Cross-encoder reranker: a directory or a hub id (BAAI/bge-reranker-*)."
    ),
]
MaxLengthOption = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per pair, special tokens included (default 512).")
]
QueryMaxLengthOption = Annotated[
    int | None,
    typer.Option("--query-max-length", help="Tokens of the query (default: --max-length × 3 / 4)."),
]
NormalizeOption = Annotated[
    bool, typer.Option("--normalize", help="Sigmoid of the logits: scores in (0, 1) instead of raw logits.")
]
InstructionOption = Annotated[
    str | None,
    typer.Option(
        "--instruction", help="Text put before every query (FlagReranker's query_instruction_for_rerank)."
    ),
]
BatchTokensOption = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch.")]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if any).")
]


@clean_errors
def rerank(
    pairs: Annotated[
        Path, typer.Option("--pairs", "-p", help="JSONL of {'query': ..., 'passage': ...}, or - for stdin.")
    ],
    model: RerankModelOption,
    max_length: MaxLengthOption = None,
    query_max_length: QueryMaxLengthOption = None,
    normalize: NormalizeOption = False,
    instruction: InstructionOption = None,
    batch_tokens: BatchTokensOption = None,
    device: DeviceOption = None,
) -> None:
    """Score query/passage pairs with a cross-encoder: one JSON line {"score": …} per pair, in input order."""
    from trivec.inference.reranker import Reranker
    from trivec.io import read_pairs

    check_positive(batch_tokens, "--batch-tokens")
    check_positive(max_length, "--max-length", minimum=4)
    check_positive(query_max_length, "--query-max-length")
    items = read_pairs(pairs)  # a malformed file fails before the model loads
    reranker = Reranker.from_pretrained(
        model,
        device=device,
        max_length=max_length,
        query_max_length=query_max_length,
        query_instruction=instruction,
        normalize=normalize,
        batch_tokens=batch_tokens,
    )
    scores = reranker.score(items)
    typer.echo("".join(json.dumps({"score": round(float(s), 6)}) + "\n" for s in scores), nl=False)


def register(app: typer.Typer) -> None:
    """Add `rerank` to the `trivec` app."""
    app.command()(rerank)
