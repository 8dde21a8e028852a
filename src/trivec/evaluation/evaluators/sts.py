"""STS: Spearman correlation of the cosine similarity of the two sentences' embeddings with the gold score."""

from __future__ import annotations

from trivec.evaluation.data import PairData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import DenseOnlyEvaluator, TaskScores
from trivec.evaluation.metrics import sts_scores
from trivec.evaluation.tasks import Task, TaskType


class STSEvaluator(DenseOnlyEvaluator):
    task_type = TaskType.STS

    def score(self, task: Task, data: PairData, encoder: TextEncoder) -> TaskScores:
        vectors = encoder.dense(data.sentence1 + data.sentence2)
        n = len(data.sentence1)
        return TaskScores(
            scores={"dense": sts_scores(vectors[:n], vectors[n:], data.gold)},
            details={"pairs": n},
        )
