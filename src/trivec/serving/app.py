"""The FastAPI application: OpenAI-compatible embeddings, all three outputs, scores, search, health, metrics.

Every endpoint that runs the model goes through the `DynamicBatcher`: the event loop only parses, checks
limits, counts tokens (with a private tokenizer copy) and renders JSON; the encoder thread owns the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trivec.errors import InputError
from trivec.inference import Embedder
from trivec.models.prompts import DOCUMENT, QUERY
from trivec.serving.batcher import DynamicBatcher, EncodeSpec
from trivec.serving.config import CHARS_PER_TOKEN, ServerConfig
from trivec.serving.errors import ApiError, install_error_handlers
from trivec.serving.inputs import check_count, check_lengths, fit_chars, token_limit, with_prompt
from trivec.serving.metrics import ServerMetrics
from trivec.serving.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from trivec.serving.offload import INLINE_FLOATS, heavy_text, offload, wait
from trivec.serving.render import render_embeddings, render_encode, usage
from trivec.serving.rerank import RERANK_PATHS, RerankService, install_rerank
from trivec.serving.schemas import EmbeddingsRequest, EncodeRequest, ScoreRequest, SearchRequest
from trivec.serving.state import ServingState
from trivec.serving.tokens import TokenCounter
from trivec.serving.wire import OrjsonRoute, array, dumps, json_response

if TYPE_CHECKING:  # the retrieval stack (faiss) is imported only when an index is served
    from trivec.inference.reranker import Reranker
    from trivec.serving.search import IndexSearcher

logger = logging.getLogger("trivec.serving")
ENDPOINTS = ("/v1/embeddings", "/encode", "/score", "/search", "/health", "/metrics", *RERANK_PATHS)


def create_app(
    embedder: Embedder,
    config: ServerConfig | None = None,
    index: IndexSearcher | None = None,
    reranker: Reranker | None = None,
) -> FastAPI:
    """Build the app around a loaded model (and index, and cross-encoder for /v1/rerank); the batchers start
    and drain with the app's lifespan."""
    config = config or ServerConfig()
    limits = config.limits
    limits.validate()
    model_limit = embedder.position_limit
    if limits.max_tokens_per_text is not None and limits.max_tokens_per_text > model_limit:
        raise InputError(
            f"max_tokens_per_text {limits.max_tokens_per_text} exceeds the model's limit of {model_limit} tokens",
            cli=f"--max-tokens {limits.max_tokens_per_text} exceeds the model's limit of {model_limit} tokens",
        )
    metrics = ServerMetrics()
    state = ServingState(
        config=config,
        embedder=embedder,
        batcher=DynamicBatcher(embedder, limits, metrics),
        metrics=metrics,
        index=index,
        max_tokens=limits.max_tokens_per_text or embedder.max_length,  # default: where the model cuts inputs
        count=TokenCounter(embedder.tokenizer),
    )
    state.max_chars = limits.max_chars_per_text or CHARS_PER_TOKEN * state.max_tokens
    if reranker is not None:
        state.rerank = RerankService(reranker, limits, config.reranker_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        if state.rerank is not None:
            state.rerank.batcher.start()
        logger.info(
            "serving %s (%s) — dynamic batching %s, queue %d texts, batch budget %d tokens",
            config.model_name,
            ", ".join(embedder.available_modes()),
            "on" if limits.dynamic_batching else "off",
            limits.queue_size,
            limits.batch_tokens,
        )
        try:
            yield
        finally:
            pending = state.batcher.queued_requests
            stopped = await run_in_threadpool(state.batcher.close, config.graceful_timeout_s)
            if stopped:
                logger.info("encoder stopped after finishing %d queued request(s)", pending)
            else:
                logger.error("encoder still busy after %.0f s; exiting anyway", config.graceful_timeout_s)
            if state.rerank is not None:
                await run_in_threadpool(state.rerank.batcher.close, config.graceful_timeout_s)
            if state.index is not None:
                state.index.close()

    app = FastAPI(
        title="trivec",
        summary="Dense, sparse and ColBERT embeddings, scores and search over HTTP",
        lifespan=lifespan,
    )
    app.router.route_class = OrjsonRoute
    app.state.trivec = state
    install_error_handlers(app)
    # outermost first: metrics see every answer, the key is checked before the body limit reads anything
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    if config.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=config.api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=ENDPOINTS)
    install_rerank(app, state.rerank, state.max_chars)

    @app.post("/v1/embeddings", summary="OpenAI-compatible dense embeddings")
    async def embeddings(req: EmbeddingsRequest) -> Response:
        dim = embedder.model.hidden_size
        if req.dimensions is not None and req.dimensions > dim:
            raise ApiError(
                422,
                f"dimensions {req.dimensions} is larger than the model's {dim}-dimensional embeddings",
                param="dimensions",
            )
        check_count(state, len(req.input))
        texts = fit_chars(state, req.input, False, "input")
        prompt, formatted = with_prompt(embedder, texts, req.prompt_name)
        counts = await offload(heavy_text(formatted), state.count, formatted)
        tokens = check_lengths(counts, state.max_tokens, False, "input")
        spec = EncodeSpec(dense=True, max_length=state.max_tokens, prompt=prompt)
        result = await wait(state.batcher.submit(texts, spec, tokens))
        assert result.dense is not None
        body = await offload(
            result.dense.size > INLINE_FLOATS,
            render_embeddings,
            result.dense,
            req.encoding_format,
            config.model_name,
            sum(result.num_tokens),
            req.dimensions,
            embedder.model.normalize,
        )
        return json_response(body)

    @app.post("/encode", summary="Dense, sparse and ColBERT outputs of texts")
    async def encode(req: EncodeRequest) -> Response:
        embedder.model.require(sparse=req.sparse, colbert=req.colbert)
        check_count(state, len(req.texts))
        limit = token_limit(state, req.max_length, "max_length")
        truncate = req.truncate or req.max_length is not None
        texts = fit_chars(state, req.texts, truncate, "texts")
        prompt, formatted = with_prompt(embedder, texts, req.prompt_name, req.prompt)
        counts = await offload(heavy_text(formatted), state.count, formatted)
        tokens = check_lengths(counts, limit, truncate, "texts")
        spec = EncodeSpec(
            dense=req.dense,
            sparse=req.sparse,
            colbert=req.colbert,
            max_length=limit,
            mcls=req.mcls,
            prompt=prompt,
        )
        result = await wait(state.batcher.submit(texts, spec, tokens))
        floats = (result.dense.size if result.dense is not None else 0) + sum(
            c.size for c in result.colbert or []
        )
        return json_response(await offload(floats > INLINE_FLOATS, render_encode, state, req, result))

    @app.post("/score", summary="Scores of query/passage pairs or of one query against passages")
    async def score(req: ScoreRequest) -> Response:
        modes = req.modes
        if modes is not None:
            embedder.model.require(sparse="sparse" in modes, colbert="colbert" in modes)
        try:
            weights = embedder.hybrid_weights(req.weights, req.language)
        except ValueError as exc:
            raise ApiError(422, str(exc), param="weights") from None
        if req.pairs is not None:
            queries = [q for q, _ in req.pairs]
            passages = [p for _, p in req.pairs]
        else:
            assert req.query is not None and req.passages is not None
            queries, passages = [req.query], list(req.passages)
        check_count(state, len(queries) + len(passages))
        q_limit = token_limit(state, req.max_query_length, "max_query_length")
        p_limit = token_limit(state, req.max_passage_length, "max_passage_length")
        queries = fit_chars(state, queries, req.truncate or req.max_query_length is not None, "query")
        passages = fit_chars(state, passages, req.truncate or req.max_passage_length is not None, "passage")
        _, formatted = with_prompt(embedder, queries, QUERY, req.query_prompt)
        _, formatted_passages = with_prompt(embedder, passages, DOCUMENT, req.document_prompt)
        q_counts, p_counts = await offload(
            heavy_text(formatted, formatted_passages),
            lambda: (state.count(formatted), state.count(formatted_passages)),
        )
        tokens = check_lengths(q_counts, q_limit, req.truncate or req.max_query_length is not None, "query")
        tokens += check_lengths(
            p_counts, p_limit, req.truncate or req.max_passage_length is not None, "passage"
        )

        def run(model: Embedder) -> dict[str, np.ndarray]:
            common: dict[str, Any] = {
                "modes": modes,
                "weights": weights,
                "query_prompt": req.query_prompt,
                "document_prompt": req.document_prompt,
                "max_query_length": q_limit,
                "max_passage_length": p_limit,
            }
            if req.pairs is not None:
                return model.score_pairs(list(zip(queries, passages, strict=True)), **common)
            return model.score(queries[0], passages, **common)

        try:
            scores = await wait(state.batcher.submit_call(run, len(queries) + len(passages), tokens))
        except ValueError as exc:  # e.g. no mode with a positive weight
            raise ApiError(422, str(exc), param="weights") from None
        payload = {
            "object": "scores",
            "model": config.model_name,
            "scores": {mode: array(values) for mode, values in scores.items()},
            "usage": usage(tokens),
        }
        return json_response(dumps(payload))

    @app.post("/search", summary="Search the loaded index")
    async def search(req: SearchRequest) -> Response:
        index = state.index
        if index is None:
            raise ApiError(
                404, "no index is loaded on this server; start it with `trivec serve --index DIR` to search"
            )
        queries = req.texts()
        check_count(state, len(queries))
        limit = token_limit(state, req.max_length, "max_length")
        queries = fit_chars(state, queries, req.truncate or req.max_length is not None, "query")
        prompt, formatted = with_prompt(embedder, queries, QUERY, index.query_prompt(req.query_prompt))
        counts = await offload(heavy_text(formatted), state.count, formatted)
        tokens = check_lengths(counts, limit, req.truncate or req.max_length is not None, "query")
        plan = index.plan(req)
        dense, sparse, colbert = plan.needs
        spec = EncodeSpec(dense=dense, sparse=sparse, colbert=colbert, max_length=limit, prompt=prompt)
        encoded = await wait(state.batcher.submit(queries, spec, tokens))
        hits = await wait(index.submit(encoded, req))
        payload: dict[str, Any] = {"object": "search", "model": config.model_name}
        if req.query is not None:
            payload["results"] = hits[0]
        else:
            payload["results"] = hits
        payload["usage"] = usage(tokens)
        return json_response(dumps(payload))

    @app.get("/health", summary="Liveness, model and queue state")
    async def health() -> Response:
        batcher = state.batcher
        ok = batcher.alive and not batcher.closing
        dims = {"dense": embedder.model.hidden_size}
        if state.colbert_dim is not None:
            dims["colbert"] = state.colbert_dim
        payload = {
            "status": "ok" if ok else ("shutting_down" if batcher.closing else "starting"),
            "model": config.model_name,
            "outputs": embedder.available_modes(),
            "dims": dims,
            "prompts": embedder.prompts,
            "default_prompt_name": embedder.default_prompt_name,
            "fusion": embedder.fusion_defaults.describe(),  # what /search uses when a request names nothing
            "max_tokens_per_text": state.max_tokens,
            "max_texts_per_request": limits.max_texts_per_request,
            "dynamic_batching": limits.dynamic_batching,
            "queue": {
                "texts": batcher.queued_texts,
                "requests": batcher.queued_requests,
                "capacity_texts": limits.queue_size,
            },
            "index": await run_in_threadpool(state.index.describe) if state.index is not None else None,
            "reranker": state.rerank.describe() if state.rerank is not None else None,
            "uptime_s": round(time.time() - state.started, 3),
        }
        return Response(dumps(payload), status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
