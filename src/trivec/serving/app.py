"""The FastAPI application: OpenAI-compatible embeddings, all three outputs, scores, search, health, metrics.

Every endpoint that runs the model goes through the `DynamicBatcher`: the event loop only parses, checks
limits, counts tokens (with a private tokenizer copy) and renders JSON; the encoder thread owns the model.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from trivec.errors import InputError
from trivec.inference import Embedder, EncodeResult
from trivec.inference.scoring import normalize_weights
from trivec.models.prompts import DOCUMENT, QUERY
from trivec.serving.batcher import DynamicBatcher, EncodeSpec
from trivec.serving.config import CHARS_PER_TOKEN, ServerConfig
from trivec.serving.errors import ApiError, install_error_handlers
from trivec.serving.metrics import ServerMetrics
from trivec.serving.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware
from trivec.serving.rerank import RERANK_PATHS, RerankService, install_rerank
from trivec.serving.schemas import EmbeddingsRequest, EncodeRequest, ScoreRequest, SearchRequest
from trivec.serving.tokens import TokenCounter
from trivec.vectors import unit_rows

if TYPE_CHECKING:  # the retrieval stack (faiss) is imported only when an index is served
    from trivec.inference.reranker import Reranker
    from trivec.serving.search import IndexSearcher

logger = logging.getLogger("trivec.serving")
T = TypeVar("T")
INLINE_CHARS = 20_000  # tokenise inline below this many characters per request
INLINE_FLOATS = 50_000  # render JSON inline below this many numbers per response
ENDPOINTS = ("/v1/embeddings", "/encode", "/score", "/search", "/health", "/metrics", *RERANK_PATHS)


@dataclass
class ServingState:
    """What the endpoints share: the model, its batcher, metrics, the optional index and the limits."""

    config: ServerConfig
    embedder: Embedder
    batcher: DynamicBatcher
    metrics: ServerMetrics
    index: IndexSearcher | None
    max_tokens: int
    count: TokenCounter
    max_chars: int = 0
    started: float = field(default_factory=time.time)
    rerank: RerankService | None = None  # the cross-encoder behind /v1/rerank, when one is served

    @property
    def colbert_dim(self) -> int | None:
        head = self.embedder.model.colbert_head
        return int(head.out_features) if head is not None else None


# ---------------------------------------------------------------------- request bodies
class OrjsonRequest(Request):
    """A request whose JSON body is parsed by orjson: ≈ 10× faster than `json` on large bodies (parsing runs
    on the event loop), and strict — a lone surrogate escape (`"\\ud800"`), bytes that are not UTF-8, NaN
    or an infinite number is a JSON error (422), not text that fails later inside the tokenizer."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    """The app's routes: their handlers see an `OrjsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def with_orjson(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return with_orjson


# ---------------------------------------------------------------------- request checks
def with_prompt(
    embedder: Embedder, texts: list[str], prompt_name: str | None, prompt: str | None = None
) -> list[str]:
    """The texts with their prompt before them, as `Embedder.encode(prompt_name=, prompt=)` feeds them to
    the model (the batcher then encodes them as they are); an unknown prompt name → 422."""
    try:
        return embedder.with_prompt(texts, prompt_name, prompt)
    except InputError as exc:
        raise ApiError(422, str(exc), param="prompt_name") from None


def _fit_chars(state: ServingState, texts: list[str], truncate: bool, name: str) -> list[str]:
    """Texts within the character limit, checked before they are tokenised: a longer one is refused (413) —
    its tokens could only exceed the token limit, and counting them would hold a thread, the GIL and
    gigabytes for seconds — or, when the request truncates, cut to the limit (at a space near it, if any:
    the first `max_tokens` tokens lie well inside it)."""
    limit = state.max_chars
    out: list[str] | None = None
    for position, text in enumerate(texts):
        if len(text) <= limit:
            continue
        if not truncate:
            raise ApiError(
                413,
                f"{name}[{position}] has {len(text):,} characters, more than this server reads per text "
                f"({limit:,}, --max-chars; texts are limited to {state.max_tokens:,} tokens); shorten it, "
                'or send "truncate": true to cut it',
                param=name,
            )
        if out is None:
            out = list(texts)
        space = text.rfind(" ", limit - 256, limit)
        out[position] = text[: space if space > 0 else limit]
    return out if out is not None else texts


def _check_count(state: ServingState, count: int) -> None:
    limit = state.config.limits.max_texts_per_request
    if count > limit:
        raise ApiError(
            413,
            f"{count} texts in one request; this server accepts at most {limit} (--max-texts); "
            "split the input into several requests",
        )


def _limit(state: ServingState, requested: int | None, name: str) -> int:
    if requested is None:
        return state.max_tokens
    if requested > state.max_tokens:
        raise ApiError(
            422,
            f"{name} {requested} exceeds this server's limit of {state.max_tokens} tokens per text",
            param=name,
        )
    return requested


def _check_lengths(counts: list[int], limit: int, truncate: bool, name: str) -> int:
    """Refuse a text longer than `limit` unless truncating; return the tokens that will be encoded."""
    if not truncate:
        for position, count in enumerate(counts):
            if count > limit:
                raise ApiError(
                    413,
                    f"{name}[{position}] has {count} tokens, more than the limit of {limit} tokens per text; "
                    'shorten it, or send "truncate": true to cut it to the limit',
                    param=name,
                )
    return sum(min(count, limit) for count in counts)


async def _offload(heavy: bool, func: Callable[..., T], *args: Any) -> T:
    """Run `func` in a worker thread when it is heavy; small work runs inline (a thread hop costs more)."""
    if heavy:
        return await run_in_threadpool(func, *args)
    return func(*args)


def _heavy_text(*groups: Sequence[str]) -> bool:
    return sum(len(text) for texts in groups for text in texts) > INLINE_CHARS


async def _wait(future: Future[T]) -> T:
    return await asyncio.wrap_future(future)


def _usage(tokens: int) -> dict[str, int]:
    return {"prompt_tokens": int(tokens), "total_tokens": int(tokens)}


def _dumps(payload: dict[str, Any]) -> bytes:
    """JSON with numpy arrays written directly: float32 values in their shortest exact form (they parse back
    to the same float32), an order of magnitude faster than `json` on embedding-sized payloads."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def _array(values: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=dtype)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


# ---------------------------------------------------------------------- rendering
def render_embeddings(
    vectors: np.ndarray,
    encoding_format: str,
    model: str,
    tokens: int,
    dimensions: int | None,
    normalize: bool,
) -> bytes:
    """OpenAI's embeddings response; `dimensions` truncates, then re-normalises when the model normalises."""
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]
        if normalize:
            vectors = unit_rows(vectors)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _b64(row) if encoding_format == "base64" else _array(row),
        }
        for i, row in enumerate(vectors.astype(np.float32, copy=False))
    ]
    return _dumps({"object": "list", "data": data, "model": model, "usage": _usage(tokens)})


def render_encode(state: ServingState, req: EncodeRequest, result: EncodeResult) -> bytes:
    base64_out = req.encoding_format == "base64"
    data: list[dict[str, Any]] = []
    for i in range(len(result)):
        item: dict[str, Any] = {"index": i, "num_tokens": result.num_tokens[i]}
        if result.dense is not None:
            row = result.dense[i]
            item["dense"] = _b64(row) if base64_out else _array(row)
        if result.sparse is not None:
            vector = result.sparse[i]
            sparse: dict[str, Any] = {
                "indices": _array(vector.indices, np.int32),
                "values": _array(vector.values),
            }
            if req.sparse_tokens:
                sparse["tokens"] = state.embedder.tokenizer.convert_ids_to_tokens(vector.indices.tolist())
            item["sparse"] = sparse
        if result.colbert is not None:
            rows = result.colbert[i]
            item["colbert"] = _b64(rows) if base64_out else _array(rows)
        data.append(item)
    dims: dict[str, int] = {}
    if result.dense is not None:
        dims["dense"] = int(result.dense.shape[1])
    if result.colbert is not None and state.colbert_dim is not None:
        dims["colbert"] = state.colbert_dim
    payload = {
        "object": "list",
        "model": state.config.model_name,
        "encoding_format": req.encoding_format,
        "dims": dims,
        "data": data,
        "usage": _usage(sum(result.num_tokens)),
    }
    return _dumps(payload)


# ---------------------------------------------------------------------- the app
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
        _check_count(state, len(req.input))
        texts = with_prompt(embedder, _fit_chars(state, req.input, False, "input"), req.prompt_name)
        counts = await _offload(_heavy_text(texts), state.count, texts)
        tokens = _check_lengths(counts, state.max_tokens, False, "input")
        spec = EncodeSpec(dense=True, max_length=state.max_tokens)
        result = await _wait(state.batcher.submit(texts, spec, tokens))
        assert result.dense is not None
        body = await _offload(
            result.dense.size > INLINE_FLOATS,
            render_embeddings,
            result.dense,
            req.encoding_format,
            config.model_name,
            sum(result.num_tokens),
            req.dimensions,
            embedder.model.normalize,
        )
        return _json(body)

    @app.post("/encode", summary="Dense, sparse and ColBERT outputs of texts")
    async def encode(req: EncodeRequest) -> Response:
        embedder.model.require(sparse=req.sparse, colbert=req.colbert)
        _check_count(state, len(req.texts))
        limit = _limit(state, req.max_length, "max_length")
        truncate = req.truncate or req.max_length is not None
        texts = with_prompt(
            embedder, _fit_chars(state, req.texts, truncate, "texts"), req.prompt_name, req.prompt
        )
        counts = await _offload(_heavy_text(texts), state.count, texts)
        tokens = _check_lengths(counts, limit, truncate, "texts")
        spec = EncodeSpec(
            dense=req.dense, sparse=req.sparse, colbert=req.colbert, max_length=limit, mcls=req.mcls
        )
        result = await _wait(state.batcher.submit(texts, spec, tokens))
        floats = (result.dense.size if result.dense is not None else 0) + sum(
            c.size for c in result.colbert or []
        )
        return _json(await _offload(floats > INLINE_FLOATS, render_encode, state, req, result))

    @app.post("/score", summary="Scores of query/passage pairs or of one query against passages")
    async def score(req: ScoreRequest) -> Response:
        modes = req.modes
        if modes is not None:
            embedder.model.require(sparse="sparse" in modes, colbert="colbert" in modes)
        try:
            weights = normalize_weights(req.weights, embedder.fusion_weights)
        except ValueError as exc:
            raise ApiError(422, str(exc), param="weights") from None
        if req.pairs is not None:
            queries = [q for q, _ in req.pairs]
            passages = [p for _, p in req.pairs]
        else:
            assert req.query is not None and req.passages is not None
            queries, passages = [req.query], list(req.passages)
        _check_count(state, len(queries) + len(passages))
        q_limit = _limit(state, req.max_query_length, "max_query_length")
        p_limit = _limit(state, req.max_passage_length, "max_passage_length")
        queries = _fit_chars(state, queries, req.truncate or req.max_query_length is not None, "query")
        passages = _fit_chars(state, passages, req.truncate or req.max_passage_length is not None, "passage")
        formatted = with_prompt(embedder, queries, QUERY, req.query_prompt)
        formatted_passages = with_prompt(embedder, passages, DOCUMENT, req.document_prompt)
        q_counts, p_counts = await _offload(
            _heavy_text(formatted, formatted_passages),
            lambda: (state.count(formatted), state.count(formatted_passages)),
        )
        tokens = _check_lengths(q_counts, q_limit, req.truncate or req.max_query_length is not None, "query")
        tokens += _check_lengths(
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
            scores = await _wait(state.batcher.submit_call(run, len(queries) + len(passages), tokens))
        except ValueError as exc:  # e.g. no mode with a positive weight
            raise ApiError(422, str(exc), param="weights") from None
        payload = {
            "object": "scores",
            "model": config.model_name,
            "scores": {mode: _array(values) for mode, values in scores.items()},
            "usage": _usage(tokens),
        }
        return _json(_dumps(payload))

    @app.post("/search", summary="Search the loaded index")
    async def search(req: SearchRequest) -> Response:
        index = state.index
        if index is None:
            raise ApiError(
                404, "no index is loaded on this server; start it with `trivec serve --index DIR` to search"
            )
        queries = req.texts()
        _check_count(state, len(queries))
        limit = _limit(state, req.max_length, "max_length")
        queries = _fit_chars(state, queries, req.truncate or req.max_length is not None, "query")
        formatted = with_prompt(embedder, queries, QUERY, index.query_prompt(req.query_prompt))
        counts = await _offload(_heavy_text(formatted), state.count, formatted)
        tokens = _check_lengths(counts, limit, req.truncate or req.max_length is not None, "query")
        plan = index.plan(req)
        dense, sparse, colbert = plan.needs
        spec = EncodeSpec(dense=dense, sparse=sparse, colbert=colbert, max_length=limit)
        encoded = await _wait(state.batcher.submit(formatted, spec, tokens))
        hits = await _wait(index.submit(encoded, req))
        payload: dict[str, Any] = {"object": "search", "model": config.model_name}
        if req.query is not None:
            payload["results"] = hits[0]
        else:
            payload["results"] = hits
        payload["usage"] = _usage(tokens)
        return _json(_dumps(payload))

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
        return Response(_dumps(payload), status_code=200 if ok else 503, media_type="application/json")

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
