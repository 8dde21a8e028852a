"""`trivec serve`: the HTTP API (heavy imports stay inside the command)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import (
    DEFAULT_DTYPE,
    BackendOption,
    DocumentPromptOption,
    DtypeOption,
    OnnxFileOption,
    QueryPromptOption,
    clean_errors,
    fail,
    prompt_overrides,
)


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the `trivec` app."""

    @app.command("serve")
    @clean_errors
    def serve(
        model: Annotated[
            str | None,
            typer.Option(
                "--model",
                "-m",
                help="Model directory, hub id, or 'default' (default; with --index: its model).",
            ),
        ] = None,
        index: Annotated[
            Path | None, typer.Option("--index", help="Index directory (trivec.retrieval) for POST /search.")
        ] = None,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        api_key_env: Annotated[
            str | None,
            typer.Option(
                "--api-key-env",
                help="Name of an environment variable holding the API key; clients then send "
                "'Authorization: Bearer <key>'.",
            ),
        ] = None,
        served_model_name: Annotated[
            str | None, typer.Option(help="Model id reported in responses (default: the model's name).")
        ] = None,
        device: Annotated[
            str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: cuda if any).")
        ] = None,
        dtype: DtypeOption = DEFAULT_DTYPE,
        threads: Annotated[
            int | None, typer.Option(help="torch CPU threads of the encoder (default: one per core).")
        ] = None,
        max_texts: Annotated[int, typer.Option(help="Texts per request (a score pair counts two).")] = 512,
        max_tokens: Annotated[
            int | None, typer.Option(help="Tokens per text (default: the model's limit); longer → 413.")
        ] = None,
        max_body_bytes: Annotated[int, typer.Option(help="Request body size; larger → 413.")] = 16
        * 1024
        * 1024,
        max_chars: Annotated[
            int | None,
            typer.Option(
                help="Characters per text (default: 32 per token of --max-tokens); longer → 413 before "
                "tokenising, or cut to it with truncate."
            ),
        ] = None,
        queue_size: Annotated[
            int, typer.Option(help="Texts waiting for the encoder; a request that does not fit → 503.")
        ] = 4096,
        batch_tokens: Annotated[int, typer.Option(help="Token budget of one merged batch.")] = 16384,
        max_wait_ms: Annotated[
            float, typer.Option(help="How long a request may wait for others to join its batch.")
        ] = 2.0,
        rejoin_wait_ms: Annotated[
            float,
            typer.Option(help="Under load, how long a batch waits for just-answered clients to send again."),
        ] = 5.0,
        no_batching: Annotated[
            bool, typer.Option("--no-batching", help="Encode one request at a time (no merging).")
        ] = False,
        graceful_timeout: Annotated[
            float, typer.Option(help="Seconds to finish in-flight work on shutdown.")
        ] = 30.0,
        query_prompt: QueryPromptOption = None,
        document_prompt: DocumentPromptOption = None,
        log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
        access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
        backend: BackendOption = "torch",
        onnx_file: OnnxFileOption = None,
        no_verify: Annotated[
            bool,
            typer.Option(
                "--no-verify",
                help="Serve --index without checking its files first (blocks are still checked when read).",
            ),
        ] = False,
        reranker: Annotated[
            str | None,
            typer.Option("--reranker", help="Cross-encoder (dir or hub id) served at POST /v1/rerank."),
        ] = None,
    ) -> None:
        """Serve the model over HTTP: OpenAI /v1/embeddings, /encode, /score, /search, /health, /metrics;
        with --reranker, /v1/rerank."""
        from trivec.serving.config import ServerConfig, ServingLimits
        from trivec.serving.server import run_server

        api_key = None
        if api_key_env is not None:
            api_key = os.environ.get(api_key_env, "")
            if not api_key.strip():
                raise fail(f"--api-key-env {api_key_env}: that environment variable is not set or is empty")
            api_key = api_key.strip()
        if index is not None and not index.is_dir():
            raise fail(f"--index {index}: no such directory")
        limits = ServingLimits(
            max_texts_per_request=max_texts,
            max_tokens_per_text=max_tokens,
            max_body_bytes=max_body_bytes,
            max_chars_per_text=max_chars,
            queue_size=queue_size,
            batch_tokens=batch_tokens,
            max_wait_ms=max_wait_ms,
            rejoin_wait_ms=rejoin_wait_ms,
            dynamic_batching=not no_batching,
        )
        config = ServerConfig(
            model=model if model is not None or index is not None else "default",
            index=index,
            host=host,
            port=port,
            api_key=api_key,
            served_model_name=served_model_name,
            device=device,
            dtype=dtype,
            prompts=prompt_overrides(query_prompt, document_prompt),
            threads=threads,
            backend=backend,
            onnx_file=onnx_file,
            limits=limits,
            graceful_timeout_s=graceful_timeout,
            log_level=log_level.lower(),
            verify_index=not no_verify,
            reranker=reranker,
        ).validate()  # every setting checked before the model loads
        run_server(config, access_log=access_log)
