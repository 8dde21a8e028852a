"""Pair classification: best-threshold accuracy, F1 and average precision of the pair similarity, max over
cosine, dot, Euclidean and Manhattan (as MTEB)."""

from __future__ import annotations

from trivec.evaluation.data import PairData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import DenseOnlyEvaluator, TaskScores
from trivec.evaluation.metrics import pair_classification_scores
from trivec.evaluation.tasks import Task, TaskType


class PairClassificationEvaluator(DenseOnlyEvaluator):
    task_type = TaskType.PAIR_CLASSIFICATION

    def score(self, task: Task, data: PairData, encoder: TextEncoder) -> TaskScores:
        vectors = encoder.dense(data.sentence1 + data.sentence2)
        n = len(data.sentence1)
        positives = int(sum(data.gold))
        return TaskScores(
            scores={"dense": pair_classification_scores(vectors[:n], vectors[n:], data.gold)},
            details={"pairs": n, "positives": positives},
        )
