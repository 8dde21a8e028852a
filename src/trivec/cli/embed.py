"""`trivec encode` and `trivec score`: the model's outputs for texts and for query/passage pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trivec.cli.common import (
    DEFAULT_DTYPE,
    QUIET_HELP,
    BackendOption,
    DevicesOption,
    DocumentPromptOption,
    DtypeOption,
    LanguageOption,
    ModelOption,
    OnnxFileOption,
    QueryPromptOption,
    WeightsOption,
    WorkersOption,
    check_dtype_option,
    check_language_option,
    check_positive,
    check_workers,
    clean_errors,
    encode_workers,
    fail,
    parse_weights,
    prompt_overrides,
)
from trivec.inference.choices import check_backend
from trivec.progress import LOG, Progress

ENCODE_CHUNK = 4096  # texts encoded and written per step (bounds the memory of a long input)


@clean_errors
def encode(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help=".txt (one text per line), .jsonl ({'id'?: ..., 'title'?: ..., 'text': ...}; a title is encoded "
            "before its text, as an index does), or - for stdin (JSON Lines when its first line is a JSON "
            "object, else one text per line).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="JSONL output, one object per input text (with its 'id' when the input has ids), or - for stdout.",
        ),
    ],
    model: ModelOption = "default",
    dense: Annotated[bool, typer.Option("--dense", help="Write the dense vector.")] = False,
    sparse: Annotated[
        bool, typer.Option("--sparse", help="Write lexical weights {indices, values}.")
    ] = False,
    colbert: Annotated[bool, typer.Option("--colbert", help="Write ColBERT vectors.")] = False,
    prompt_name: Annotated[
        str | None,
        typer.Option(
            "--prompt-name",
            help="Model prompt put before every text: 'query', 'document' or another name the model has "
            "(default: the model's default prompt, if any).",
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Text put before every text instead ('' for none).")
    ] = None,
    query: Annotated[
        bool, typer.Option("--query", help="Inputs are search queries: short for --prompt-name query.")
    ] = False,
    max_length: Annotated[int | None, typer.Option(help="Truncate inputs (default: model limit).")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help="Padded tokens per batch.")] = None,
    mcls: Annotated[
        bool, typer.Option("--mcls", help="Average a CLS every 256 tokens (long inputs).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    backend: BackendOption = "torch",
    onnx_file: OnnxFileOption = None,
    dtype: DtypeOption = DEFAULT_DTYPE,
    layer: Annotated[
        int | None,
        typer.Option(
            "--layer",
            help="Write the token vectors of layer K as 'hidden_states' (0 = the embeddings' output, -1 = the "
            "last).",
        ),
    ] = None,
    workers: WorkersOption = None,
    devices: DevicesOption = None,
) -> None:
    """Encode texts into dense / sparse / ColBERT outputs (dense when none is chosen; --layer alone: only
    that layer's token vectors)."""
    from trivec.inference import Embedder
    from trivec.inference.spans import overlong_notice
    from trivec.io import check_output_path, open_output, read_records

    if query:
        if prompt_name not in (None, "query"):
            raise fail(f"--query means --prompt-name query; it contradicts --prompt-name {prompt_name}")
        prompt_name = "query"
    check_positive(batch_tokens, "--batch-tokens")
    check_positive(max_length, "--max-length", minimum=2)
    runtime = check_backend(backend, onnx_file)
    check_dtype_option(dtype)
    check_workers(workers, devices)
    check_output_path(output, inputs=[input])  # before the model loads and the texts are encoded
    records = read_records(input, title_field="title")  # a title goes first, as in an index
    texts = [text for _, text in records]
    if not (dense or sparse or colbert or layer is not None):
        dense = True
    embedder = Embedder.from_pretrained(model, backend=runtime, onnx_file=onnx_file, dtype=dtype)
    embedder.require(sparse=sparse, colbert=colbert)
    if layer is not None:  # a layer out of range fails before any output is written
        from trivec.inference.hidden import check_layer, num_layers

        check_layer(layer, num_layers(embedder.model))
    before = embedder.resolve_prompt(
        prompt_name, prompt
    )  # an unknown name fails before any output is written
    cut: dict[str, int] = {}  # texts read on their first max_length tokens only: said at the end
    with (
        encode_workers(embedder, workers, devices),
        open_output(output) as handle,
        Progress(len(texts), "encode", enabled=not quiet) as progress,
    ):
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start : start + ENCODE_CHUNK]
            result = embedder.encode(
                chunk,
                dense=dense,
                sparse=sparse,
                colbert=colbert,
                prompt_name=prompt_name,
                prompt=prompt,
                max_length=max_length,
                batch_tokens=batch_tokens,
                mcls=mcls,
                show_progress=False,
                hidden_states=layer is not None,
                layer=layer if layer is not None else -1,
            )
            asked = embedder.with_prompt(chunk, prompt=before)  # as encode read them
            for i, tokens in embedder.overlong(asked, max_length, read=result.num_tokens).items():
                ident = records[start + i][0]
                cut[f"id {ident}" if ident is not None else f"text {start + i + 1}"] = tokens
            for i in range(len(chunk)):
                row: dict[str, Any] = {}
                ident = records[start + i][0]
                if ident is not None:  # the input's id, carried over
                    row["id"] = ident
                if result.dense is not None:
                    row["dense"] = result.dense[i].tolist()
                if result.sparse is not None:
                    row["sparse"] = result.sparse[i].to_dict()
                if result.colbert is not None:
                    row["colbert"] = result.colbert[i].tolist()
                if result.hidden_states is not None:
                    row["hidden_states"] = result.hidden_states[i].tolist()
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            progress.update(len(chunk))
    if cut:
        limit = max_length or embedder.max_length
        LOG.warning(
            overlong_notice(
                "text(s)", cut, limit, "; --max-length reads more of them, up to the model's limit"
            )
        )
    LOG.info("encoded %d texts → %s", len(texts), "stdout" if str(output) == "-" else output)


@clean_errors
def score(
    pairs: Annotated[
        Path, typer.Option("--pairs", "-p", help="JSONL of {'query': ..., 'passage': ...}, or - for stdin.")
    ],
    model: ModelOption = "default",
    weights: WeightsOption = None,
    query_prompt: QueryPromptOption = None,
    document_prompt: DocumentPromptOption = None,
    max_query_length: Annotated[int | None, typer.Option(help="Query truncation.")] = None,
    max_passage_length: Annotated[int | None, typer.Option(help="Passage truncation.")] = None,
    backend: BackendOption = "torch",
    onnx_file: OnnxFileOption = None,
    dtype: DtypeOption = DEFAULT_DTYPE,
    language: LanguageOption = None,
) -> None:
    """Score query/passage pairs: per-mode scores and weighted hybrids, one JSON line per pair.

    Queries get the model's 'query' prompt and passages its 'document' prompt (if it has them)."""
    from trivec.inference import Embedder
    from trivec.io import read_pairs

    runtime = check_backend(backend, onnx_file)
    check_dtype_option(dtype)
    items = read_pairs(pairs)
    parsed = parse_weights(weights)
    language = check_language_option(language)
    embedder = Embedder.from_pretrained(
        model,
        prompts=prompt_overrides(query_prompt, document_prompt),
        backend=runtime,
        onnx_file=onnx_file,
        dtype=dtype,
    )
    scores = embedder.score_pairs(
        items,
        weights=parsed,
        max_query_length=max_query_length,
        max_passage_length=max_passage_length,
        language=language,
    )
    for i in range(len(items)):
        typer.echo(json.dumps({mode: round(float(values[i]), 6) for mode, values in scores.items()}))


def register(app: typer.Typer) -> None:
    """Add `encode` and `score` to the `trivec` app."""
    app.command()(encode)
    app.command()(score)
