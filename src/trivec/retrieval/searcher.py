"""One search pipeline for every store: candidates → exact per-mode scores → fusion → document hits.

A store (the embedded index's segments, a Qdrant collection, the evaluators' in-memory arrays) answers the
questions only it can — the top rows of one list, the exact scores of given rows, what a row's document is —
through a `QueryScorer` per query. Everything else is decided here, once: how deep the first stage goes,
how candidate lists merge, which modes are scored, how they fuse, how ties order, and how chunks of one
document collapse into one hit. So every backend and the evaluators rank alike by construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trivec.inference.scoring import MODES
from trivec.retrieval.fusion import applied_fusion, fuse_by, top_k
from trivec.retrieval.plan import SearchPlan

Ranked = tuple[np.ndarray, np.ndarray]  # (keys, scores), best first


@dataclass
class Hit:
    """One search result: the chunk, its document, the fused score and every computed per-mode score."""

    id: str
    doc_id: str
    score: float
    scores: dict[str, float]
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # the fusion that gave `score` (`weighted`, `rrf` or `zscore`: auto fusion's choice for the query); None
    # for a single mode's own score or a reranker's
    fused_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ranking:
    """One query's candidates in rank order: their keys, fused scores and the per-mode scores computed."""

    keys: np.ndarray
    fused: np.ndarray
    per_mode: dict[str, np.ndarray]
    fused_by: str | None = None  # the fusion applied (`applied_fusion`); None: one mode's own scores

    def head(self, k: int) -> Ranking:
        per_mode = {m: v[:k] for m, v in self.per_mode.items()}
        return Ranking(self.keys[:k], self.fused[:k], per_mode, self.fused_by)


class QueryScorer(ABC):
    """One query against one store. Keys name stored rows (chunks); their meaning is the store's."""

    @abstractmethod
    def top(self, mode: str, k: int) -> Ranked:
        """The `k` best rows of one first-stage list (`dense` or `sparse`), best first."""

    @abstractmethod
    def scores(self, modes: Iterable[str], keys: np.ndarray) -> dict[str, np.ndarray]:
        """Exact scores of `keys` in each of `modes` the query has vectors for."""

    def candidates(self, plan: SearchPlan, depth: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The candidate set of a multi-mode search and any scores of it found on the way: the union of the
        first-stage lists' top `depth`, in order of first appearance."""
        return union([self.top(mode, depth)[0][:depth] for mode in plan.first_stage]), {}

    def located(self, keys: np.ndarray) -> list[Any]:
        """Whatever `doc_id` and `hit` need of each key, found for all of them at once (default: the key)."""
        return keys.tolist()

    @abstractmethod
    def doc_id(self, where: Any) -> str:
        """The document of one located key (a chunked index groups hits by it)."""

    @abstractmethod
    def hit(self, where: Any, score: float, scores: dict[str, float], doc_id: str | None) -> Hit:
        """The result of one located key (`doc_id` when already known)."""


def candidate_depth(plan: SearchPlan, grouped: bool) -> int:
    """How many rows each first-stage list gives: the plan's candidates when they are re-scored or grouped
    by document (chunks of one document take several places), else just the hits asked for."""
    return plan.candidates if grouped or plan.mode in ("colbert", "hybrid") else plan.top_k


def reported_modes(plan: SearchPlan) -> list[str]:
    """Modes scored for every candidate: the fused ones and the first-stage lists (shown with each hit)."""
    wanted = set(plan.score_modes) | set(plan.first_stage)
    return [m for m in MODES if m in wanted]


def score_candidates(
    scorer: QueryScorer, keys: np.ndarray, plan: SearchPlan, known: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray], str | None]:
    """Exact per-mode scores of `keys` (those in `known` are not asked again), their fusion and the fusion
    applied (`applied_fusion`)."""
    known = dict(known or {})
    missing = [m for m in reported_modes(plan) if m not in known]
    computed = scorer.scores(missing, keys) if missing else {}
    per_mode = {m: known[m] if m in known else computed[m] for m in MODES if m in known or m in computed}
    fused_modes = {m: per_mode[m] for m in plan.score_modes}
    # decided once (auto fusion measures the spreads here), then applied
    applied = applied_fusion(fused_modes, plan.fusion, plan.weights, plan.spreads)
    return fuse_by(applied, fused_modes, plan.weights), per_mode, applied


def rank(scorer: QueryScorer, plan: SearchPlan, depth: int) -> Ranking:
    """One query's ranking: a single list as the store ranks it, or the fused re-scoring of candidates."""
    if plan.mode in ("dense", "sparse"):
        keys, values = scorer.top(plan.mode, depth)
        return Ranking(keys, values, {plan.mode: values})
    keys, known = scorer.candidates(plan, depth)
    if keys.shape[0] == 0:
        return Ranking(keys, np.zeros(0), {})
    fused, per_mode, fused_by = score_candidates(scorer, keys, plan, known)
    order = top_k(fused, keys.shape[0])  # best first, ties by candidate order
    return Ranking(keys[order], fused[order], {m: v[order] for m, v in per_mode.items()}, fused_by)


def hits(scorer: QueryScorer, ranking: Ranking, k: int, grouped: bool) -> list[Hit]:
    """The first `k` results of `ranking`; `grouped`: one per document (its best chunk)."""
    if not grouped:  # one hit per row: only the first k matter
        ranking = ranking.head(k)
    modes = list(ranking.per_mode)
    columns = (
        list(zip(*(ranking.per_mode[m].tolist() for m in modes), strict=True))
        if modes
        else [()] * ranking.keys.shape[0]
    )
    out: list[Hit] = []
    seen: set[str] = set()
    located = scorer.located(ranking.keys)
    for where, score, values in zip(located, ranking.fused.tolist(), columns, strict=True):
        doc_id = None
        if grouped:
            doc_id = scorer.doc_id(where)
            if doc_id in seen:
                continue
            seen.add(doc_id)
        found = scorer.hit(where, score, dict(zip(modes, values, strict=True)), doc_id)
        found.fused_by = ranking.fused_by
        out.append(found)
        if len(out) == k:
            break
    return out


def search(scorers: Iterable[QueryScorer], plan: SearchPlan, grouped: bool) -> list[list[Hit]]:
    """Hits of every query, one list per query, in order (`scorers`: one per query, each used before the
    next is taken, so a store may hold per-query buffers)."""
    depth = candidate_depth(plan, grouped)
    return [hits(scorer, rank(scorer, plan, depth), plan.top_k, grouped) for scorer in scorers]


def union(lists: list[np.ndarray]) -> np.ndarray:
    """The distinct keys of several rankings, in order of first appearance."""
    if not lists:
        return np.zeros(0, dtype=np.int64)
    joined = np.concatenate(lists).astype(np.int64)
    _, first = np.unique(joined, return_index=True)
    return joined[np.sort(first)]
