"""`trivec index build|add|delete|info|compact` and `trivec search` (heavy imports stay inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trivec.cli.common import (
    DEFAULT_DTYPE,
    DevicesOption,
    DocumentPromptOption,
    DtypeOption,
    IndexOption,
    ModelBackendOption,
    OnnxFileOption,
    QueryPromptOption,
    WorkersOption,
    check_dtype_option,
    check_workers,
    clean_errors,
    encode_workers,
    fail,
    prompt_overrides,
)
from trivec.inference.choices import check_backend
from trivec.progress import LOG


def register(app: typer.Typer) -> None:
    """Add the retrieval commands to the `trivec` app."""

    index_app = typer.Typer(
        name="index", help="Build and change a search index (embedded, or on Qdrant).", no_args_is_help=True
    )
    app.add_typer(index_app, name="index")

    @index_app.command("build")
    @clean_errors
    def build(
        corpus: Annotated[
            Path,
            typer.Option(
                "--corpus",
                "-c",
                help="JSONL ({id, title?, text}), a folder of .txt/.md files, or - (JSON Lines on stdin).",
            ),
        ],
        index: IndexOption,
        model: Annotated[
            str, typer.Option("--model", "-m", help="Model directory, hub id, or 'default'.")
        ] = "default",
        chunk_tokens: Annotated[
            int | None, typer.Option(help="Split documents into windows of this many tokens.")
        ] = None,
        chunk_overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive windows.")] = 0,
        max_length: Annotated[
            int | None, typer.Option(help="Truncate passages (default: model limit).")
        ] = None,
        backend: Annotated[str, typer.Option(help="embedded (a directory) or qdrant.")] = "embedded",
        url: Annotated[
            str | None, typer.Option(help="Qdrant server/cluster URL (default: qdrant-client local mode).")
        ] = None,
        collection: Annotated[str | None, typer.Option(help="Qdrant collection name.")] = None,
        colbert_dtype: Annotated[
            str | None,
            typer.Option(
                help="ColBERT codes: float16, float32, int8, int4, binary, residual1, residual2 (centroid + 1 or 2 "
                "bits per dimension; default: the index default)."
            ),
        ] = None,
        colbert_dim: Annotated[
            int | None, typer.Option(help="Store ColBERT vectors projected to this many dimensions.")
        ] = None,
        colbert_pool_factor: Annotated[
            int | None,
            typer.Option(
                help="Pool each document's ColBERT tokens by this factor (1: none; default: the index default)."
            ),
        ] = None,
        colbert_pool_floor: Annotated[
            int | None,
            typer.Option(
                help="Pool no document to fewer than this many ColBERT vectors (0: none; default: the index "
                "default)."
            ),
        ] = None,
        dense_index: Annotated[
            str, typer.Option(help="auto (HNSW past --ann-threshold rows), flat (exact), hnsw, ivf.")
        ] = "auto",
        dense_quantization: Annotated[
            str | None,
            typer.Option(
                help="Dense first stage over codes: none (float32), int8 or binary; the best rows re-scored "
                "from float32 (segments then stay flat: no HNSW)."
            ),
        ] = None,
        dense_oversampling: Annotated[
            float | None,
            typer.Option(help="Rows re-scored per segment: k × this (≥ 1; default: int8 2, binary 8)."),
        ] = None,
        ann_threshold: Annotated[int, typer.Option(help="Segment rows from which auto uses HNSW.")] = 50_000,
        qdrant_on_disk: Annotated[
            str | None,
            typer.Option(
                help="Qdrant: the parts kept on disk, comma-separated, from dense, colbert, sparse, hnsw, "
                "payload; the others in RAM ('' for none on disk; default: Qdrant's defaults)."
            ),
        ] = None,
        qdrant_shards: Annotated[int | None, typer.Option(help="Qdrant: the collection's shards.")] = None,
        qdrant_replicas: Annotated[
            int | None, typer.Option(help="Qdrant: copies of each shard (replication factor).")
        ] = None,
        max_segment_rows: Annotated[
            int | None,
            typer.Option(
                help="At most this many rows per segment, each with its own graph (default: no limit): "
                "a large build stays linear in time, searches read every segment."
            ),
        ] = None,
        no_sparse: Annotated[bool, typer.Option("--no-sparse", help="Do not store sparse vectors.")] = False,
        no_colbert: Annotated[
            bool, typer.Option("--no-colbert", help="Do not store ColBERT vectors.")
        ] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index.")] = False,
        query_prompt: QueryPromptOption = None,
        document_prompt: DocumentPromptOption = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Errors and warnings only: no progress or log lines.")
        ] = False,
        model_backend: ModelBackendOption = "torch",
        onnx_file: OnnxFileOption = None,
        dtype: DtypeOption = DEFAULT_DTYPE,
        workers: WorkersOption = None,
        devices: DevicesOption = None,
    ) -> None:
        """Build an index of a corpus with a model's dense, sparse and ColBERT vectors.

        Documents get the model's 'document' prompt; the query and document prompts are recorded with the
        index, and `trivec search` / `trivec index add` use them."""
        from trivec.retrieval import Index, read_corpus

        options: dict[str, Any] = {
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "max_length": max_length,
            "colbert_dim": colbert_dim,
            "dense_index": dense_index,
            "ann_threshold": ann_threshold,
            "sparse": not no_sparse,
            "colbert": not no_colbert,
            "prompts": prompt_overrides(query_prompt, document_prompt),
        }
        given = {
            "colbert_dtype": colbert_dtype,
            "colbert_pool_factor": colbert_pool_factor,
            "colbert_pool_floor": colbert_pool_floor,
            "dense_quantization": dense_quantization,
            "dense_oversampling": dense_oversampling,
            "max_segment_rows": max_segment_rows,
            "qdrant_on_disk": None if qdrant_on_disk is None else [p for p in qdrant_on_disk.split(",") if p],
            "qdrant_shards": qdrant_shards,
            "qdrant_replicas": qdrant_replicas,
        }
        options.update({k: v for k, v in given.items() if v is not None})  # else the settings' defaults
        if backend == "qdrant":
            options.update(url=url, collection=collection)
        elif url is not None or collection is not None:
            raise fail("--url and --collection apply to --backend qdrant")
        Index.check_build(index, backend=backend, overwrite=overwrite, **options)  # before the model loads
        runtime = check_backend(model_backend, onnx_file, "--model-backend")
        check_dtype_option(dtype)
        check_workers(workers, devices)
        docs = read_corpus(corpus)
        from trivec.inference import Embedder

        # the same model and index fingerprint whatever the runtime (onnxruntime) or precision (--dtype)
        encoder = Embedder.from_pretrained(model, backend=runtime, onnx_file=onnx_file, dtype=dtype)
        # built beside --index and moved into place when complete: a failure leaves nothing behind
        with (
            encode_workers(encoder, workers, devices),
            Index.build(
                index,
                docs,
                encoder,
                backend=backend,
                overwrite=overwrite,
                progress=not quiet,  # a bar on a terminal, a line every 10 s in a log
                **options,
            ) as built,
        ):
            LOG.info(
                "indexed %d documents (%d chunks; modes %s) → %s",
                len(docs),
                built.info()["chunks"],
                ", ".join(built.modes),
                index,
            )

    @index_app.command("add")
    @clean_errors
    def add(
        corpus: Annotated[
            Path, typer.Option("--corpus", "-c", help="JSONL or folder of new documents, or - (stdin).")
        ],
        index: IndexOption,
        upsert: Annotated[
            bool, typer.Option("--upsert", help="Replace documents whose id is already indexed.")
        ] = False,
        workers: WorkersOption = None,
        devices: DevicesOption = None,
    ) -> None:
        """Add documents to an index (with --upsert: add or replace)."""
        from trivec.retrieval import Index, read_corpus

        check_workers(workers, devices)
        docs = read_corpus(corpus)
        with Index.open(index) as opened:
            replaced = len(opened.present([d.id for d in docs])) if upsert else 0
            if not upsert:
                opened.check_new(docs)  # before the model loads
            with encode_workers(opened.embedder, workers, devices):
                chunks = opened.update(docs, upsert=True) if upsert else opened.add(docs)
            LOG.info(
                "added %d and replaced %d document(s) (%d chunks); the index has %d",
                len(docs) - replaced,
                replaced,
                chunks,
                len(opened),
            )

    @index_app.command("delete")
    @clean_errors
    def delete(
        ids: Annotated[list[str], typer.Argument(help="Document ids to delete.")],
        index: IndexOption,
        missing_ok: Annotated[
            bool, typer.Option("--missing-ok", help="Ignore ids not in the index.")
        ] = False,
    ) -> None:
        """Delete documents (all their chunks) by id."""
        from trivec.retrieval import Index

        with Index.open(index) as opened:
            removed = opened.delete(ids, missing_ok=missing_ok)
            LOG.info("deleted %d chunks; the index has %d documents", removed, len(opened))

    @index_app.command("compact")
    @clean_errors
    def compact(index: IndexOption) -> None:
        """Merge the segments of an embedded index and drop deleted rows."""
        from trivec.retrieval import EmbeddedIndex, Index

        with Index.open(index) as opened:
            if not isinstance(opened, EmbeddedIndex):
                raise fail("compact applies to embedded indexes (Qdrant optimises its own segments)")
            opened.compact()
            LOG.info("compacted: %d segment(s), %d documents", len(opened.segments), len(opened))

    @index_app.command("verify")
    @clean_errors
    def verify(
        index: IndexOption,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Check every file of an embedded index against its checksums and structure (exit 2 if damaged)."""
        from trivec.retrieval import EmbeddedIndex, Index

        with Index.open(index) as opened:
            if not isinstance(opened, EmbeddedIndex):
                raise fail("verify applies to embedded indexes (Qdrant checks its own storage)")
            report = opened.verify()
        problems = report["problems"]
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            for problem in problems:
                typer.echo(f"damaged: {problem}")
            for warning in report["warnings"]:
                LOG.warning("%s", warning)
        if problems:
            raise fail(f"{index} is damaged: {len(problems)} problem(s); the first: {problems[0]}")
        LOG.info(
            "%s: intact — %d segment(s), %d files, %s bytes checked in %.2f s",
            index,
            report["segments"],
            report["files"],
            f"{report['bytes']:,}",
            report["seconds"],
        )

    @index_app.command("info")
    @clean_errors
    def info(
        index: IndexOption,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """What an index holds: model, modes, documents, segments, bytes per representation."""
        from trivec.retrieval import Index

        with Index.open(index) as opened:
            data = opened.info()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        model = data["model"]
        typer.echo(
            f"index      {data['path']} ({data['backend']}{', ' + data['url'] if 'url' in data else ''})"
        )
        typer.echo(f"model      {model['name']} (fingerprint {model['fingerprint']})")
        typer.echo(f"modes      {', '.join(data['modes'])}")
        typer.echo(f"dense      {dense_storage(data['settings'])}")
        if "colbert" in data["modes"]:
            typer.echo(f"colbert    {colbert_storage(data['settings'], data.get('colbert_residual'))}")
        if data["backend"] == "qdrant":
            typer.echo(f"qdrant     {qdrant_storage(data['settings'])}")
        prompts = data["settings"].get("prompts")
        typer.echo(
            "prompts    "
            + (
                ", ".join(f"{role} {prompts[role]!r}" for role in ("query", "document") if role in prompts)
                if prompts is not None
                else "not recorded (the model's)"
            )
        )
        typer.echo(f"documents  {data['documents']} ({data['chunks']} chunks)")
        if "segments" in data:
            cap = data["settings"].get("max_segment_rows")
            typer.echo(
                f"segments   {len(data['segments'])} (generation {data['generation']})"
                + (f", at most {cap:,} rows each" if cap else "")
            )
            for seg in data["segments"]:
                typer.echo(
                    f"  {seg['name']}: {seg['rows']} rows, {seg['deleted']} deleted, dense {seg['ann']}"
                    + (f" ({seg['codes']} codes)" if seg.get("codes") else "")
                )
            typer.echo("bytes      " + ", ".join(f"{k} {v:,}" for k, v in data["bytes"].items()))


def dense_storage(settings: dict[str, Any]) -> str:
    """How the dense first stage reads its vectors, in words (an index that predates quantisation: none)."""
    from trivec.retrieval import IndexSettings

    recorded = IndexSettings.from_dict(settings)
    if recorded.dense_quantization == "none":
        return "float32"
    return (
        f"{recorded.dense_quantization} codes, oversampling {recorded.oversampling:g} "
        "(the first stage; its best rows re-scored from float32)"
    )


def colbert_storage(settings: dict[str, Any], residual: dict[str, Any] | None = None) -> str:
    """How ColBERT vectors are stored, in words (an index that predates pooling records no pool factor);
    `residual`: residual codes' bits and centroids (`info()["colbert_residual"]`)."""
    dims = settings.get("colbert_dim") or "all"
    pool = settings.get("colbert_pool_factor", 1)
    codes = f"{settings.get('colbert_dtype')} codes"
    if residual is not None:
        count = residual.get("centroids")
        fitted = (
            f"{count} centroids"
            if count
            else f"float16 until {residual.get('fit_at_tokens', 0):,} stored tokens fit the centroids "
            f"({residual.get('staged_tokens', 0):,} now)"
        )
        codes = f"residual codes, {residual['bits']} bit{'s' if residual['bits'] > 1 else ''}, {fitted}"
    floor = settings.get("colbert_pool_floor", 0)
    kept = f", at least {floor} per document" if floor else ""
    return f"{codes}, {dims} dimensions, pool factor {pool}" + (
        " (no pooling)" if pool == 1 else f" (≈ 1/{pool} of the tokens{kept})"
    )


def qdrant_storage(settings: dict[str, Any]) -> str:
    """Where a Qdrant collection keeps its parts, and its shards and replicas, in words (None: Qdrant's)."""
    parts = settings.get("qdrant_on_disk")
    where = "Qdrant's defaults" if parts is None else ", ".join(parts) or "nothing"
    shards, replicas = settings.get("qdrant_shards"), settings.get("qdrant_replicas")
    return f"on disk: {where}; shards {shards or 'default'}, replicas {replicas or 'default'}"
