"""Token pooling: fewer ColBERT vectors per document, each the mean of a cluster of similar tokens.

A document's token vectors are clustered hierarchically (Ward linkage over their Euclidean distances —
for unit vectors the same order as cosine distance) into `pooled_count(T, pool_factor, floor)` clusters —
`T // pool_factor`, but never fewer than `min(T, floor)`: a short document keeps its tokens (pooled by 3,
the short abstracts of vaswani-npl lost 2.1 nDCG@10 points in `colbert` mode; a floor of 32 brought that to
0.6 at 1/20 more bytes over eleven sets, docs/scale.md) —; each
cluster's mean, re-normalised to the length of the inputs (unit when they are unit), stands for its
tokens. MaxSim then matches a query token against the cluster means: Clavié et al. (2024, "Reducing the
Footprint of Multi-Vector Retrieval with Minimal Performance Impact via Token Pooling") keep ≈ 99–100% of
retrieval quality at pool factor 2–3. Queries are never pooled. Clusters come out in the order of their
first token, so pooling is deterministic.
"""

from __future__ import annotations

import numpy as np

from trivec.errors import InputError


def check_pool_factor(value: object) -> int:
    """The pool factor as an int ≥ 1 (1: no pooling), else a one-line `InputError`."""
    return _check_count("colbert_pool_factor", value, 1, "1: no pooling")


def check_pool_floor(value: object) -> int:
    """The pool floor as an int ≥ 0 (0: none), else a one-line `InputError`."""
    return _check_count("colbert_pool_floor", value, 0, "0: none")


def _check_count(name: str, value: object, least: int, meaning: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        flag = "--" + name.replace("_", "-")
        raise InputError(
            f"{name} must be an integer ≥ {least} ({meaning}), got {value!r}",
            cli=f"{flag} must be an integer ≥ {least} ({meaning}), got {value}",
        )
    return value


def pooled_count(tokens: int, pool_factor: int, floor: int = 0) -> int:
    """How many vectors `pool_tokens` leaves of `tokens`: `tokens // pool_factor`, at least 1 and at least
    `min(tokens, floor)`."""
    return max(1, tokens // pool_factor, min(tokens, floor))


def pool_tokens(rows: np.ndarray, pool_factor: int, floor: int = 0) -> np.ndarray:
    """`[T, D]` token vectors → `[pooled_count(T, pool_factor, floor), D]` cluster means (float32; as given
    when `pool_factor` is 1 or there are too few tokens to merge)."""
    rows = np.asarray(rows, dtype=np.float32)
    tokens = int(rows.shape[0])
    clusters = pooled_count(tokens, pool_factor, floor)
    if pool_factor == 1 or tokens <= 1 or clusters >= tokens:
        return rows
    labels = _ward_labels(rows, clusters)
    order = np.unique(labels, return_index=True)[1]  # first token of each label
    ranked = np.empty(labels.max() + 1, dtype=np.int64)
    ranked[labels[np.sort(order)]] = np.arange(order.shape[0])
    groups = ranked[labels]  # 0 … k-1 in order of each cluster's first token
    count = int(groups.max()) + 1
    sums = np.zeros((count, rows.shape[1]), dtype=np.float64)
    np.add.at(sums, groups, rows)
    sizes = np.bincount(groups, minlength=count).astype(np.float64)
    means = sums / sizes[:, None]
    # back to the inputs' length (unit vectors stay unit): MaxSim compares like with like
    length = float(np.mean(np.linalg.norm(rows, axis=1)))
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means * (length / np.where(norms > 0, norms, 1.0))).astype(np.float32)


def _ward_labels(rows: np.ndarray, clusters: int) -> np.ndarray:
    """Cluster label (1 … ≤ clusters) of each row: Ward linkage cut at `clusters` clusters."""
    from scipy.cluster.hierarchy import fcluster, linkage

    tree = linkage(rows.astype(np.float64), method="ward")
    return np.asarray(fcluster(tree, t=clusters, criterion="maxclust"), dtype=np.int64)
