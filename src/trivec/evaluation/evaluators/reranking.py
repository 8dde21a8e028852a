"""Reranking: order each query's given candidates, per M3 mode and BM25; MAP (scikit-learn) and MRR@10.

Every model mode scores all candidates exactly (no first-stage cut); hybrids fuse them as a search does
(`settings.fusion` with `settings.weights`). BM25's
statistics come from the whole corpus. The retrieval metrics of the candidate rankings (nDCG@k, Recall@k, …)
are reported too, from pytrec_eval.
"""

from __future__ import annotations

import numpy as np

from trivec.evaluation.bm25 import Bm25Index
from trivec.evaluation.data import RetrievalData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import MODEL_MODES, Evaluator, TaskScores
from trivec.evaluation.evaluators.retrieval import (
    candidate_scores,
    encode_for_modes,
    outputs_needed,
    plan,
)
from trivec.evaluation.metrics import reranking_scores_per_query, retrieval_table, table_means
from trivec.evaluation.search import ArrayQuery, DenseIndex
from trivec.evaluation.tasks import Task, TaskType


class RerankingEvaluator(Evaluator):
    task_type = TaskType.RERANKING

    def needs_model(self) -> bool:
        return any(m in MODEL_MODES for m in self.settings.modes)

    def evaluate(self, task: Task, data: RetrievalData, encoder: TextEncoder | None) -> TaskScores:
        settings = self.settings
        modes, skipped = plan(settings, encoder)
        outcome = TaskScores(skipped=skipped)
        query_ids = data.query_ids
        pool: dict[str, int] = {}
        for query_id in query_ids:
            for doc_id in data.candidates[query_id]:
                pool.setdefault(doc_id, len(pool))
        outcome.details = {
            "queries": len(query_ids),
            "candidates": sum(len(data.candidates[q]) for q in query_ids),
            "distinct_candidates": len(pool),
        }
        per_mode: dict[str, dict[str, np.ndarray]] = {}
        want_dense, _, _ = outputs_needed(modes)
        if want_dense and encoder is not None:
            position = {doc_id: i for i, doc_id in enumerate(data.corpus_ids)}
            texts = [data.corpus_texts[position[d]] for d in pool]
            docs, queries = encode_for_modes(encoder, texts, data.query_texts, modes, settings.prompts)
            assert docs.dense is not None
            dense = DenseIndex(docs.dense)
            scorers = [ArrayQuery(docs, queries, q, dense) for q in range(len(query_ids))]
            for mode in modes:
                if mode not in MODEL_MODES:
                    continue
                per_mode[mode] = {
                    query_id: candidate_scores(
                        mode,
                        scorers[q],
                        np.array([pool[d] for d in data.candidates[query_id]], dtype=np.int64),
                        settings,
                    )
                    for q, query_id in enumerate(query_ids)
                }
        if "bm25" in modes:
            index = Bm25Index(data.corpus_texts, task.language, settings.bm25)
            position = {doc_id: i for i, doc_id in enumerate(data.corpus_ids)}
            per_mode["bm25"] = {}
            for query_id, text in zip(query_ids, data.query_texts, strict=True):
                values = index.scores(text)
                per_mode["bm25"][query_id] = values[[position[d] for d in data.candidates[query_id]]]
            outcome.details["bm25"] = settings.bm25.describe(task.language)
        positives = {q: {d for d, g in data.qrels.get(q, {}).items() if g > 0} for q in query_ids}
        judged = {q: data.qrels[q] for q in query_ids if positives[q]}
        for mode in modes:
            scores = per_mode[mode]
            result, per_query = reranking_scores_per_query(
                positives, {q: data.candidates[q] for q in query_ids}, scores
            )
            run = {
                q: {d: float(s) for d, s in zip(data.candidates[q], scores[q].tolist(), strict=True)}
                for q in query_ids
            }
            trec = {
                key: by_query
                for key, by_query in retrieval_table(judged, run).items()
                if key.startswith(("ndcg_at_", "recall_at_", "precision_at_", "map_at_"))
            }
            result.update(table_means(trec))
            per_query.update(trec)
            if task.main_score not in per_query:
                raise ValueError(f"main score {task.main_score!r} is not one of {', '.join(per_query)}")
            outcome.scores[mode] = result
            outcome.per_query[mode] = per_query[task.main_score]  # for paired comparisons
        return outcome
