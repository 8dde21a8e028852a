"""`trivec search`: query an index (embedded or Qdrant) from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trivec.cli.common import (
    DEFAULT_DTYPE,
    BackendOption,
    DtypeOption,
    FusionOption,
    IndexOption,
    LanguageOption,
    OnnxFileOption,
    QueryPromptOption,
    WeightsOption,
    check_dtype_option,
    check_language_option,
    clean_errors,
    fail,
    parse_weights,
)
from trivec.inference.choices import check_backend
from trivec.progress import LOG


def register(app: typer.Typer) -> None:
    """Add `trivec search` to the `trivec` app."""

    @app.command("search")
    @clean_errors
    def search(
        index: IndexOption,
        query: Annotated[list[str] | None, typer.Argument(help="Query text(s).")] = None,
        queries: Annotated[
            Path | None,
            typer.Option("--queries", help="Queries file: .txt (one per line) or .jsonl ({id?, text})."),
        ] = None,
        top_k: Annotated[int, typer.Option("--top-k", "-k", help="Results per query.")] = 10,
        mode: Annotated[str, typer.Option(help="dense, sparse, colbert or hybrid.")] = "hybrid",
        weights: WeightsOption = None,
        fusion: FusionOption = None,
        candidates: Annotated[
            int | None, typer.Option(help="First-stage depth per list (default max(100, top-k)).")
        ] = None,
        query_prompt: QueryPromptOption = None,
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="Model (default: the one that built the index).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="JSON output (one line per query).")] = False,
        backend: BackendOption = "torch",
        onnx_file: OnnxFileOption = None,
        dtype: DtypeOption = DEFAULT_DTYPE,
        rerank: Annotated[
            str | None,
            typer.Option(
                "--rerank", help="Cross-encoder (dir or hub id) re-scoring the top --rerank-depth hits."
            ),
        ] = None,
        rerank_depth: Annotated[
            int | None,
            typer.Option("--rerank-depth", help="Hits re-ranked per query (default max(100, top-k))."),
        ] = None,
        language: LanguageOption = None,
    ) -> None:
        """Search an index: dense ∪ sparse candidates, ColBERT re-rank, weighted, RRF, z-score or auto fusion;
        --rerank: a cross-encoder re-scores the top hits.

        Queries get the query prompt recorded with the index (--query-prompt to override)."""
        from trivec.retrieval import Index
        from trivec.retrieval.base import check_query_texts
        from trivec.retrieval.fusion import check_fusion
        from trivec.retrieval.plan import check_search_options
        from trivec.retrieval.rerank import rerank_depth as depth_of_rerank

        items = query_items(query or [], queries)
        texts = [text for _, text in items]
        check_query_texts(texts)  # before the model loads, not after
        given_weights = parse_weights(weights)
        check_search_options(mode, top_k, candidates, given_weights)
        if rerank is not None:
            depth_of_rerank(rerank_depth, top_k)
        runtime = check_backend(backend, onnx_file)
        check_dtype_option(dtype)
        language = check_language_option(language)  # before the model loads, not after
        if fusion is not None:
            check_fusion(fusion)  # before the model loads, not after
        for option, given in (("--fusion", fusion), ("--weights", weights)):
            if given is not None and mode != "hybrid":
                LOG.warning(
                    "%s %s applies to --mode hybrid: --mode %s gives its own scores", option, given, mode
                )
        from trivec.inference import Embedder

        # the index's model (or --model), in onnxruntime with --backend onnx, at --dtype's precision
        if model is None:
            with Index.open(index) as recorded:
                model = recorded.identity.name
            if not model:
                raise fail(f"{index}: the index does not record a model name; give --model")
        encoder = Embedder.from_pretrained(model, backend=runtime, onnx_file=onnx_file, dtype=dtype)
        with Index.open(index, encoder) as opened:
            results = opened.search(
                texts,
                top_k=top_k,
                mode=mode,
                weights=given_weights,
                fusion=fusion,
                candidates=candidates,
                prompt=query_prompt,
                rerank=rerank,
                rerank_depth=rerank_depth,
                language=language,
            )
            # after the search, which has checked the texts (lone surrogates) by then
            warn_cut_queries(opened, texts, query_prompt)
        for (query_id, text), hits in zip(items, results, strict=True):
            if as_json:
                typer.echo(
                    json.dumps(
                        {"query_id": query_id, "query": text, "hits": [h.to_dict() for h in hits]},
                        ensure_ascii=False,
                    )
                )
                continue
            fused_by = hits[0].fused_by if hits else None  # auto fusion's choice shows in the scores' scale
            typer.echo(f"query: {text}" + (f"  (fused by {fused_by})" if fused_by else ""))
            for rank, hit in enumerate(hits, start=1):
                per_mode = " ".join(f"{m}={v:.4f}" for m, v in hit.scores.items())
                snippet = " ".join(hit.text.split())[:100]
                label = f"{hit.doc_id}" + (f" [{hit.id}]" if hit.id != hit.doc_id else "")
                title = f" {hit.title} —" if hit.title else ""
                typer.echo(f"{rank:3d}. {hit.score:.4f}  {label}{title} {snippet}  ({per_mode})")
            typer.echo("")


def query_items(given: list[str], queries: Path | None) -> list[tuple[str, str]]:
    """(id, text) of the queries given as arguments, then of the --queries file's lines (numbered after the
    arguments: one id each; a blank line of a .txt file is no query)."""
    from trivec.io import read_records

    items = [(str(i), text) for i, text in enumerate(given)]
    if queries is not None:
        records = read_records(queries)
        lines = not str(queries).lower().endswith(".jsonl")
        items.extend(
            (str(i if ident is None else ident), text)
            for i, (ident, text) in enumerate(records, start=len(items))
            if not (lines and ident is None and not text.strip())
        )
        if len(items) == len(given):
            raise fail(f"{queries}: no query in the file")
    if not items:
        raise fail("give a query text or --queries FILE")
    return items


def warn_cut_queries(index: Any, texts: list[str], prompt: str | None) -> None:
    """Say which queries are longer than the index's token limit: they are searched on their first tokens
    (the server refuses them unless a request asks to truncate; a command line says it and goes on)."""
    from trivec.inference.spans import overlong_notice

    limit = index.settings.max_length or index.embedder.max_length
    asked = index.embedder.with_prompt(texts, prompt=index.prompt("query", prompt))  # as encode reads them
    cut = {f"query {i + 1}": tokens for i, tokens in index.embedder.overlong(asked, limit).items()}
    if cut:
        LOG.warning(overlong_notice("query(ies)", cut, limit))
