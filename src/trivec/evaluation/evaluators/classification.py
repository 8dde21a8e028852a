"""Classification as MTEB: logistic regression on embeddings of `samples_per_label` training texts per label,
`n_experiments` draws, scores averaged.

Each experiment re-shuffles the previous shuffled index list with `RandomState(seed)` and keeps the first
`samples_per_label` of each label; the classifier is `LogisticRegression(max_iter=100, random_state=seed)`.
Only the training texts some experiment draws are encoded.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from trivec.evaluation.data import ClassificationData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import DenseOnlyEvaluator, TaskScores
from trivec.evaluation.metrics import classification_scores, undersample
from trivec.evaluation.tasks import Task, TaskType


def label_ids(train: list[Any], test: list[Any]) -> tuple[list[int], list[int], list[Any]]:
    """Labels as ids 0..K−1 in sorted label order (numbers numerically, strings alphabetically)."""
    names = sorted(set(train) | set(test), key=lambda v: (isinstance(v, str), v))
    lookup = {name: i for i, name in enumerate(names)}
    return [lookup[v] for v in train], [lookup[v] for v in test], names


class ClassificationEvaluator(DenseOnlyEvaluator):
    task_type = TaskType.CLASSIFICATION

    def score(self, task: Task, data: ClassificationData, encoder: TextEncoder) -> TaskScores:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        seed = self.settings.seed
        y_train, y_test, names = label_ids(data.train_labels, data.test_labels)
        idxs: list[int] | None = None
        draws: list[list[int]] = []
        for _ in range(task.n_experiments):
            idxs, kept = undersample(y_train, task.samples_per_label, idxs, seed)
            draws.append(kept)
        union = sorted(set().union(*draws))
        row = {original: i for i, original in enumerate(union)}
        train_vectors = encoder.dense([data.train_texts[i] for i in union])
        test_vectors = encoder.dense(data.test_texts)
        per_experiment: list[dict[str, float]] = []
        for kept in draws:
            classifier = LogisticRegression(max_iter=100, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(train_vectors[[row[i] for i in kept]], np.asarray([y_train[i] for i in kept]))
            per_experiment.append(classification_scores(y_test, classifier.predict(test_vectors).tolist()))
        scores: dict[str, Any] = {
            key: float(np.mean([s[key] for s in per_experiment])) for key in per_experiment[0]
        }
        scores["accuracy_per_experiment"] = [s["accuracy"] for s in per_experiment]
        return TaskScores(
            scores={"dense": scores},
            details={
                "train": len(data.train_texts),
                "test": len(data.test_texts),
                "labels": len(names),
                "samples_per_label": task.samples_per_label,
                "n_experiments": task.n_experiments,
                "train_texts_encoded": len(union),
                "classifier": "LogisticRegression(max_iter=100)",
            },
        )
