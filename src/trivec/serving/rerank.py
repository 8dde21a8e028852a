"""`POST /v1/rerank` (also `/rerank`): a cross-encoder's scores in the shape Cohere, Jina and TEI clients use.

Request: `query`, `documents` (strings, or objects with a `text`; TEI's `texts` is accepted too), `top_n`,
`return_documents`, `raw_scores`. Answer: `results: [{index, relevance_score, document?: {text}}]`, best
first, with `model` and `usage`. `relevance_score` is the sigmoid of the logit (0..1, as Cohere, Jina and
TEI give it) unless `raw_scores` is true.

Requests are tokenised on the HTTP side (under a lock: the tokenizer is not shared across threads) and go to
their own worker thread (`RerankBatcher`), which merges concurrent requests into token-budget batches as the
encoder's batcher does; the same limits (texts per request, characters per text, queue, batch tokens) and
the same API key apply.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from trivec.serving.batcher import DynamicBatcher, _Job
from trivec.serving.config import ServingLimits
from trivec.serving.errors import ApiError
from trivec.textcheck import json_type

if TYPE_CHECKING:
    from fastapi import FastAPI

    from trivec.inference.reranker import PairInputs, Reranker

RERANK_PATHS = ("/v1/rerank", "/rerank")
_SPEC = "rerank"  # every rerank job shares one spec: all of them may merge


def _documents(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"documents must be a list of strings, got {json_type(value)}")
    if not value:
        raise ValueError("documents must not be empty: send at least one document to rank")
    out: list[str] = []
    for position, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            item = item["text"]  # Cohere / Jina: {"text": ...}
        if not isinstance(item, str):
            raise ValueError(f"documents[{position}] is {json_type(item)}, not a string or {{'text': ...}}")
        out.append(item)
    return out


class RerankRequest(BaseModel):
    """`POST /v1/rerank` (Cohere / Jina / TEI fields; unknown fields are ignored, as those clients send
    their own, e.g. `max_chunks_per_doc`)."""

    model_config = ConfigDict(extra="ignore")

    query: str
    documents: list[str] = Field(validation_alias=AliasChoices("documents", "texts"))
    top_n: int | None = Field(default=None, ge=1, validation_alias=AliasChoices("top_n", "top_k"))
    return_documents: bool = Field(
        default=False, validation_alias=AliasChoices("return_documents", "return_text")
    )
    raw_scores: bool = False
    model: str | None = None

    @field_validator("documents", mode="before")
    @classmethod
    def _docs(cls, value: Any) -> list[str]:
        return _documents(value)


class RerankBatcher(DynamicBatcher):
    """The encoder's batcher, run on a cross-encoder: jobs are tokenised pairs (`PairInputs`) and a merged
    batch is one `Reranker.forward_inputs` call; each job gets its own slice of the logits."""

    def __init__(self, reranker: Reranker, limits: ServingLimits) -> None:
        super().__init__(reranker, limits, None)  # type: ignore[arg-type]  # no encoder gauges: own queue
        self.reranker = reranker

    def submit_pairs(self, inputs: PairInputs, tokens: int) -> Future[np.ndarray]:
        """Queue tokenised pairs; the future gives their logits (float32, input order)."""
        types: list[Any] = (
            list(inputs.token_type_ids) if inputs.token_type_ids is not None else [None] * len(inputs)
        )
        rows: Any = list(zip(inputs.input_ids, types, strict=True))
        return self._enqueue(_Job(texts=rows, tokens=tokens, future=Future(), spec=_SPEC))  # type: ignore[arg-type]

    def _execute(self, jobs: list[_Job]) -> None:
        from trivec.inference.reranker import PairInputs

        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        rows: list[Any] = [row for job in live for row in job.texts]
        typed = rows[0][1] is not None
        merged = PairInputs([r[0] for r in rows], [r[1] for r in rows] if typed else None)
        logits = self.reranker.forward_inputs(
            merged, batch_tokens=self.limits.batch_tokens, show_progress=False
        )
        start = 0
        for job in live:
            stop = start + len(job.texts)
            job.future.set_result(logits[start:stop])
            start = stop


class RerankService:
    """What `/v1/rerank` needs: the reranker, its batcher, a tokenizer lock and the model name it reports."""

    def __init__(self, reranker: Reranker, limits: ServingLimits, name: str) -> None:
        self.reranker = reranker
        self.limits = limits
        self.name = name
        self.batcher = RerankBatcher(reranker, limits)
        self._tokenize_lock = threading.Lock()

    def tokenize(self, query: str, documents: list[str]) -> PairInputs:
        from trivec.errors import InputError

        with self._tokenize_lock:
            try:
                return self.reranker.tokenize_pairs([(query, d) for d in documents])
            except InputError as exc:
                raise ApiError(422, str(exc)) from None

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "max_length": self.reranker.max_length,
            "queue": {"pairs": self.batcher.queued_texts, "requests": self.batcher.queued_requests},
        }


def install_rerank(app: FastAPI, service: RerankService | None, max_chars: int) -> None:
    """Add `POST /v1/rerank` and `POST /rerank` to `app` (404 with a hint when no reranker is loaded).

    `max_chars`: characters read per text (the server's `--max-chars`); a longer query or document is cut
    there first, as the pair is cut to the reranker's `max_length` tokens anyway."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    from trivec.serving.inputs import check_count
    from trivec.serving.offload import wait
    from trivec.serving.wire import dumps

    async def rerank(req: RerankRequest) -> Response:
        if service is None:
            raise ApiError(
                404, "no reranker is loaded on this server; start it with `trivec serve --reranker MODEL`"
            )
        state = app.state.trivec
        check_count(state, len(req.documents))  # one text per (query, document) pair
        query = _cut(req.query, max_chars)
        documents = [_cut(d, max_chars) for d in req.documents]
        started = time.perf_counter()
        heavy = sum(map(len, documents)) + len(query) * len(documents) > 20_000
        inputs = (
            await run_in_threadpool(service.tokenize, query, documents)
            if heavy
            else service.tokenize(query, documents)
        )
        tokens = sum(len(ids) for ids in inputs.input_ids)
        logits = await wait(service.batcher.submit_pairs(inputs, tokens))
        scores = logits if req.raw_scores else 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        order = np.argsort(-scores, kind="stable")[: req.top_n or len(documents)]
        results: list[dict[str, Any]] = []
        for i in order.tolist():
            item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
            if req.return_documents:
                item["document"] = {"text": req.documents[i]}
            results.append(item)
        payload = {
            "object": "rerank",
            "model": service.name,
            "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "meta": {"elapsed_ms": round((time.perf_counter() - started) * 1000, 3)},
        }
        return Response(dumps(payload), media_type="application/json")

    for path in RERANK_PATHS:
        app.post(path, summary="Rank documents for a query with the cross-encoder (Cohere / Jina / TEI)")(
            rerank
        )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
