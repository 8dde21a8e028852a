"""The re-rank stage of a search: a cross-encoder re-scores each query's top `depth` hits.

The first stage (dense ∪ sparse → ColBERT → fusion) recalls `depth` candidates per query; the reranker reads
every (query, candidate) pair and its score orders them; the best `top_k` are returned. A hit keeps its
first-stage score in `scores["retrieval"]` and gets the reranker's in `score` and `scores["rerank"]`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from trivec.errors import InputError

if TYPE_CHECKING:
    from trivec.inference.reranker import Reranker
    from trivec.retrieval.searcher import Hit

DEFAULT_RERANK_DEPTH = 100  # the usual recipe: re-rank the first stage's top 100


def rerank_depth(depth: int | None, top_k: int) -> int:
    """How many first-stage hits to re-rank: `depth` (at least `top_k`), default max(100, top_k)."""
    if depth is None:
        return max(DEFAULT_RERANK_DEPTH, top_k)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise InputError(
            f"rerank_depth must be a positive integer, got {depth!r}",
            cli=f"--rerank-depth must be a positive integer, got {depth!r}",
        )
    if depth < top_k:
        raise InputError(
            f"rerank_depth {depth} is below top_k {top_k}: the reranker can only return hits it has read",
            cli=f"--rerank-depth {depth} is below --top-k {top_k}: the reranker can only return hits it has read",
        )
    return depth


def load_reranker(reranker: str | os.PathLike[str] | Reranker, device: str | None = None) -> Reranker:
    """A `Reranker` as given, or loaded from a directory / hub id."""
    from trivec.inference.reranker import Reranker

    if isinstance(reranker, Reranker):
        return reranker
    return Reranker.from_pretrained(reranker, device=device)


def passage_text(hit: Hit) -> str:
    """What the reranker reads of a hit: `"{title} {text}"`, as the index encoded it."""
    return f"{hit.title or ''} {hit.text}".strip()


def rerank_hits(
    reranker: Reranker,
    queries: Sequence[str],
    hits: Sequence[Sequence[Hit]],
    top_k: int,
    *,
    batch_tokens: int | None = None,
) -> list[list[Hit]]:
    """Each query's hits re-scored by `reranker` and cut to `top_k`, best first (one scoring call for all
    queries, so the pairs of every query share token-budget batches)."""
    if len(queries) != len(hits):
        raise InputError(f"{len(queries)} queries but {len(hits)} hit lists")
    pairs = [(query, passage_text(hit)) for query, row in zip(queries, hits, strict=True) for hit in row]
    scores = reranker.score(pairs, batch_tokens=batch_tokens) if pairs else np.zeros(0, np.float32)
    out: list[list[Hit]] = []
    start = 0
    for row in hits:
        row_scores = scores[start : start + len(row)]
        start += len(row)
        order = np.argsort(-row_scores, kind="stable")[:top_k]
        kept = []
        for i in order.tolist():
            hit, value = row[i], float(row_scores[i])
            # in place: hits are fresh per search (and may read their stored fields lazily)
            hit.scores = {**hit.scores, "retrieval": hit.score, "rerank": value}
            hit.score, hit.fused_by = value, None  # the reranker's score, not a fusion's
            kept.append(hit)
        out.append(kept)
    return out
