"""Retrieval: rank the whole corpus per query, per M3 mode, and score the runs with pytrec_eval.

dense: exact inner-product search (faiss); sparse: exact lexical matching (CSR product); colbert: MaxSim
re-ranking of the dense top `rerank_k` (as the M3 paper evaluates multi-vector); dense+sparse: the weighted
hybrid over the union of the dense and sparse top `top_k`; all: the three-way hybrid over the union of the
dense and sparse top `rerank_k`; bm25: bm25s over the same corpus. Candidates, exact scores, fusion
(`settings.fusion` — the model's, else the weighted mean — with `settings.weights`) and ties are an index search's
own: the modes run as search plans (`mode_plan`) through `trivec.retrieval.searcher` over the corpus in
memory (`ArrayQuery`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from trivec.evaluation.bm25 import Bm25Index
from trivec.evaluation.data import RetrievalData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import (
    HYBRID_MODES,
    HYBRID_PARTS,
    MODEL_MODES,
    EvalSettings,
    Evaluator,
    TaskScores,
    mode_requirement,
)
from trivec.evaluation.metrics import retrieval_scores_per_query
from trivec.evaluation.search import ArrayQuery, DenseIndex, SparseIndex
from trivec.evaluation.tasks import Task, TaskType
from trivec.inference import EncodeResult
from trivec.models.prompts import DOCUMENT, QUERY
from trivec.retrieval.plan import SearchPlan
from trivec.retrieval.searcher import candidate_depth, rank, score_candidates
from trivec.vectors import cosine_ready

Ranking = list[tuple[np.ndarray, np.ndarray]]  # per query: (document indices, scores), best first


def plan(settings: EvalSettings, encoder: TextEncoder | None) -> tuple[list[str], dict[str, str]]:
    """The modes to run and the ones skipped (with why)."""
    has_sparse = bool(encoder and encoder.has_sparse)
    has_colbert = bool(encoder and encoder.has_colbert)
    run: list[str] = []
    skipped: dict[str, str] = {}
    for mode in settings.modes:
        if mode in MODEL_MODES and encoder is None:
            skipped[mode] = "no model loaded"
            continue
        reason = mode_requirement(mode, has_sparse, has_colbert)
        if reason:
            skipped[mode] = reason
        else:
            run.append(mode)
    for mode in HYBRID_MODES:
        if mode in run and not any(settings.weights.get(p, 0.0) > 0 for p in HYBRID_PARTS[mode]):
            run.remove(mode)
            skipped[mode] = "every weight of its modes is 0"
    return run, skipped


def outputs_needed(modes: list[str]) -> tuple[bool, bool, bool]:
    """(dense, sparse, colbert) outputs the model must produce for `modes`."""
    model_modes = [m for m in modes if m in MODEL_MODES]
    parts = {part for mode in model_modes for part in HYBRID_PARTS[mode]}
    dense = bool(model_modes)  # every model mode starts from (or includes) the dense ranking
    return dense, "sparse" in parts, "colbert" in parts


def encode_for_modes(
    encoder: TextEncoder,
    passages: list[str],
    queries: list[str],
    modes: list[str],
    prompts: Mapping[str, str],
) -> tuple[EncodeResult, EncodeResult]:
    """Passages (`document` prompt) and queries (`query` prompt) encoded with the outputs `modes` need, dense
    vectors made unit length; `prompts` overrides the model's prompts of those roles."""
    _, want_sparse, want_colbert = outputs_needed(modes)
    docs = encoder.encode(
        passages,
        dense=True,
        sparse=want_sparse,
        colbert=want_colbert,
        prompt_name=DOCUMENT,
        prompt=prompts.get(DOCUMENT),
    )
    asked = encoder.encode(
        queries,
        dense=True,
        sparse=want_sparse,
        colbert=want_colbert,
        prompt_name=QUERY,
        prompt=prompts.get(QUERY),
    )
    assert docs.dense is not None and asked.dense is not None
    normalized = encoder.embedder.model.normalize
    docs.dense = cosine_ready(docs.dense, normalized)
    asked.dense = cosine_ready(asked.dense, normalized)
    return docs, asked


def mode_plan(mode: str, settings: EvalSettings) -> SearchPlan:
    """A model mode as the search plan an index would run: single lists as ranked; `colbert` re-ranks the
    dense top `rerank_k`; `dense+sparse` fuses the union of the dense and sparse top `top_k`, `all` of
    their top `rerank_k` (`settings.fusion` with `settings.weights`)."""
    parts = HYBRID_PARTS[mode]
    if mode == "colbert":
        return SearchPlan(
            "colbert",
            ["colbert"],
            {"dense": 0.0, "sparse": 0.0, "colbert": 1.0},
            "weighted",
            settings.top_k,
            settings.rerank_k,
        )
    depth = settings.rerank_k if mode == "all" else settings.top_k
    return SearchPlan(
        mode if len(parts) == 1 else "hybrid",
        parts,
        dict(settings.weights),
        settings.fusion,
        settings.top_k,
        depth,
        settings.spreads,
    )


def candidate_scores(
    mode: str, scorer: ArrayQuery, candidates: np.ndarray, settings: EvalSettings
) -> np.ndarray:
    """Exact scores of one query's `candidates` for a model mode (hybrids fused as a search fuses them)."""
    fused, _, _ = score_candidates(scorer, candidates, mode_plan(mode, settings))
    return fused


def to_run(ids: list[str], query_ids: list[str], ranking: Ranking) -> dict[str, dict[str, float]]:
    return {
        query_id: {ids[i]: float(s) for i, s in zip(indices.tolist(), scores.tolist(), strict=True)}
        for query_id, (indices, scores) in zip(query_ids, ranking, strict=True)
    }


class RetrievalEvaluator(Evaluator):
    task_type = TaskType.RETRIEVAL

    def needs_model(self) -> bool:
        return any(m in MODEL_MODES for m in self.settings.modes)

    def evaluate(self, task: Task, data: RetrievalData, encoder: TextEncoder | None) -> TaskScores:
        settings = self.settings
        modes, skipped = plan(settings, encoder)
        outcome = TaskScores(skipped=skipped)
        outcome.details = {
            "corpus": len(data.corpus_ids),
            "queries": len(data.query_ids),
            "unjudged_queries_skipped": data.unjudged_queries,
            "qrels": sum(len(v) for v in data.qrels.values()),
            "top_k": settings.top_k,
            "rerank_k": settings.rerank_k,
        }
        runs: dict[str, dict[str, dict[str, float]]] = {}
        want_dense, _want_sparse, _want_colbert = outputs_needed(modes)
        if want_dense and encoder is not None:
            runs.update(self._model_runs(modes, data, encoder))
        if "bm25" in modes:
            index = Bm25Index(data.corpus_texts, task.language, settings.bm25)
            runs["bm25"] = to_run(
                data.corpus_ids, data.query_ids, index.search(data.query_texts, settings.top_k)
            )
            outcome.details["bm25"] = settings.bm25.describe(task.language)
        for mode in modes:
            outcome.scores[mode], outcome.per_query[mode] = retrieval_scores_per_query(
                data.qrels, runs[mode], measure=task.main_score
            )
        return outcome

    def _model_runs(
        self, modes: list[str], data: RetrievalData, encoder: TextEncoder
    ) -> dict[str, dict[str, dict[str, float]]]:
        settings = self.settings
        _, want_sparse, _ = outputs_needed(modes)
        corpus, queries = encode_for_modes(
            encoder, data.corpus_texts, data.query_texts, modes, settings.prompts
        )
        assert corpus.dense is not None and queries.dense is not None
        dense = DenseIndex(corpus.dense)
        indices, values = dense.search(queries.dense, settings.top_k)
        dense_top: Ranking = [(indices[q], values[q]) for q in range(indices.shape[0])]
        sparse_top: Ranking = []
        if want_sparse:
            assert corpus.sparse is not None and queries.sparse is not None
            sparse_top = SparseIndex(corpus.sparse).search(queries.sparse, settings.top_k)

        ids, qids = data.corpus_ids, data.query_ids
        runs: dict[str, dict[str, dict[str, float]]] = {}
        for mode in modes:
            if mode not in MODEL_MODES:
                continue
            search_plan = mode_plan(mode, settings)
            depth = candidate_depth(search_plan, grouped=False)
            ranking: Ranking = []
            for q in range(len(qids)):
                scorer = ArrayQuery(
                    corpus, queries, q, dense, dense_top[q], sparse_top[q] if sparse_top else None
                )
                ranked = rank(scorer, search_plan, depth).head(settings.top_k)
                ranking.append((ranked.keys, ranked.fused))
            runs[mode] = to_run(ids, qids, ranking)
        return runs
