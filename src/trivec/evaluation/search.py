"""Exact search for evaluation: dense by faiss `IndexFlatIP`, sparse by a scipy CSR product of vocabulary vectors.

Candidate scoring (ColBERT re-ranking, hybrids) reuses `trivec.inference.scoring`, so evaluation scores are
the very numbers `Embedder.score` gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse as sp

from trivec.inference.sparse import SparseVector


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` largest values, highest first; ties by lower index (deterministic)."""
    n = values.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = np.partition(values, n - k)[n - k]
        candidates = np.flatnonzero(values >= kth)  # all ties with the k-th value, then a stable cut
    else:
        candidates = np.arange(n)
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order][:k].astype(np.int64)


class DenseIndex:
    """Exact inner-product search (faiss `IndexFlatIP`) over float32 vectors."""

    def __init__(self, vectors: np.ndarray) -> None:
        import faiss

        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = faiss.IndexFlatIP(self.vectors.shape[1])
        self.index.add(self.vectors)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(indices [Q, k], scores [Q, k])`, best first."""
        k = min(k, len(self))
        scores, indices = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return indices.astype(np.int64), scores

    def scores(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Inner products of one query with the given documents."""
        return np.asarray(self.vectors[candidates] @ np.asarray(query, dtype=np.float32), dtype=np.float32)


def csr_from_sparse(vectors: Sequence[SparseVector], dim: int) -> sp.csr_matrix:
    """Rows of lexical weights as a `[N, dim]` CSR matrix (float64, so products match `lexical_score`)."""
    lengths = np.array([len(v) for v in vectors], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    if vectors and lengths.sum():
        indices = np.concatenate([v.indices for v in vectors]).astype(np.int64)
        data = np.concatenate([v.values for v in vectors]).astype(np.float64)
    else:
        indices = np.zeros(0, dtype=np.int64)
        data = np.zeros(0, dtype=np.float64)
    return sp.csr_matrix((data, indices, indptr), shape=(len(vectors), dim))


class SparseIndex:
    """Exact lexical-matching search: `scores = Q · Dᵀ` over vocabulary-sized sparse vectors."""

    def __init__(self, documents: Sequence[SparseVector]) -> None:
        self.documents = list(documents)
        self.dim = 1 + max((int(v.indices.max()) for v in self.documents if len(v)), default=0)
        self.matrix_t = csr_from_sparse(self.documents, self.dim).T.tocsr()

    def __len__(self) -> int:
        return len(self.documents)

    def search(
        self, queries: Sequence[SparseVector], k: int, chunk: int = 256
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (indices, scores) of the top `k` documents with a positive score, best first."""
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(queries), chunk):
            block = [_clip(q, self.dim) for q in queries[start : start + chunk]]
            scores = (csr_from_sparse(block, self.dim) @ self.matrix_t).toarray()
            for row in scores:
                best = top_k(row, k)
                best = best[row[best] > 0]
                results.append((best, row[best].astype(np.float32)))
        return results


def _clip(vector: SparseVector, dim: int) -> SparseVector:
    """Drop query tokens no document has (their ids may lie beyond the documents' largest id)."""
    keep = vector.indices < dim
    if keep.all():
        return vector
    return SparseVector(vector.indices[keep], vector.values[keep])
