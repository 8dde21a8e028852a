"""Bitext mining: for each sentence find the nearest translation candidate by cosine; accuracy and weighted F1."""

from __future__ import annotations

from trivec.evaluation.data import PairData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import DenseOnlyEvaluator, TaskScores
from trivec.evaluation.metrics import bitext_scores
from trivec.evaluation.tasks import Task, TaskType


class BitextEvaluator(DenseOnlyEvaluator):
    task_type = TaskType.BITEXT

    def score(self, task: Task, data: PairData, encoder: TextEncoder) -> TaskScores:
        source = encoder.dense(data.sentence1)
        target = encoder.dense(data.sentence2)
        return TaskScores(
            scores={"dense": bitext_scores(source, target)},
            details={"pairs": len(data.sentence1), "direction": "sentence1 → sentence2"},
        )
