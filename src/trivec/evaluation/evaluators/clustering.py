"""Clustering as C-MTEB's `.v2` tasks: a stratified subsample of `max_documents` (2048) texts, embedded once;
then MTEB's bootstrap — 10 rounds of 16,384 draws with replacement, MiniBatchKMeans with k = number of labels —
and the mean V-measure.

The subsample is scikit-learn's stratified `train_test_split` with the seed (a label with a single text makes
it fall back to a seeded random sample). A `random.Random(seed)` then orders the documents and draws the
bootstrap samples, consumed exactly as MTEB consumes its task RNG.
"""

from __future__ import annotations

import random

import numpy as np

from trivec.evaluation.data import ClusteringData
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import DenseOnlyEvaluator, TaskScores
from trivec.evaluation.metrics import bootstrapped_clustering
from trivec.evaluation.tasks import Task, TaskType


def stratified_subsample(labels: list[str], size: int | None, seed: int) -> tuple[list[int], str]:
    """Indices of a label-stratified sample of `size` texts (all when `size` is None or not smaller)."""
    n = len(labels)
    if size is None or size >= n:
        return list(range(n)), "all documents"
    from sklearn.model_selection import train_test_split

    try:
        _, picked = train_test_split(np.arange(n), test_size=size, stratify=labels, random_state=seed)
        return [int(i) for i in picked], f"stratified sample of {size} (scikit-learn, seed {seed})"
    except ValueError:
        return sorted(random.Random(seed).sample(range(n), size)), f"random sample of {size} (seed {seed})"


class ClusteringEvaluator(DenseOnlyEvaluator):
    task_type = TaskType.CLUSTERING

    def score(self, task: Task, data: ClusteringData, encoder: TextEncoder) -> TaskScores:
        seed = self.settings.seed
        subset, how = stratified_subsample(data.labels, task.max_documents, seed)
        rng = random.Random(seed)
        order = rng.sample(range(len(subset)), k=len(subset))
        texts = [data.texts[subset[i]] for i in order]
        labels = [data.labels[subset[i]] for i in order]
        vectors = encoder.dense(texts)
        scores = bootstrapped_clustering(
            vectors,
            labels,
            rng=rng,
            seed=seed,
            rounds=self.settings.clustering_rounds,
            sample_size=self.settings.clustering_sample_size,
            batch_size=self.settings.clustering_batch_size,
        )
        return TaskScores(
            scores={"dense": scores},
            details={
                "documents": len(data.texts),
                "embedded": len(texts),
                "subsample": how,
                "labels": len(set(labels)),
                "rounds": self.settings.clustering_rounds,
                "sample_size": self.settings.clustering_sample_size,
                "kmeans": f"MiniBatchKMeans(batch_size={self.settings.clustering_batch_size}, n_init=1)",
            },
        )
