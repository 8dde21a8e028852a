"""Exact search for evaluation: dense by faiss `IndexFlatIP`, sparse by a scipy CSR product of vocabulary vectors.

`ArrayQuery` puts them behind the searcher's `QueryScorer`, so that evaluation ranks with the very pipeline
an index search runs (`trivec.retrieval.searcher`: candidates, exact scores, fusion, ties). Candidate scores
(ColBERT MaxSim, lexical matching) come from `trivec.inference.scoring`: the numbers `Embedder.score` gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse as sp

from trivec.inference.scoring import lexical_scores, maxsim_scores
from trivec.inference.sparse import SparseVector
from trivec.retrieval.fusion import top_k
from trivec.retrieval.searcher import Hit, QueryScorer, Ranked

if TYPE_CHECKING:
    from trivec.inference.encoder import EncodeResult

__all__ = ["ArrayQuery", "DenseIndex", "SparseIndex", "csr_from_sparse", "top_k"]


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


class ArrayQuery(QueryScorer):
    """One query against an encoded corpus held in memory; keys are corpus positions. The first-stage lists
    (`dense_top`, `sparse_top`: this query's, found for all queries at once) are given."""

    def __init__(
        self,
        corpus: EncodeResult,
        queries: EncodeResult,
        q: int,
        dense: DenseIndex | None,
        dense_top: Ranked | None = None,
        sparse_top: Ranked | None = None,
    ) -> None:
        self.corpus, self.queries, self.q, self.dense = corpus, queries, q, dense
        self.lists = {"dense": dense_top, "sparse": sparse_top}

    def top(self, mode: str, k: int) -> Ranked:
        found = self.lists[mode]
        assert found is not None
        return found[0][:k], found[1][:k]

    def scores(self, modes: Iterable[str], keys: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        corpus, queries, q, picked = self.corpus, self.queries, self.q, keys.tolist()
        for mode in modes:
            if mode == "dense" and self.dense is not None and queries.dense is not None:
                out["dense"] = self.dense.scores(queries.dense[q], keys)
            elif mode == "sparse" and queries.sparse is not None and corpus.sparse is not None:
                out["sparse"] = lexical_scores(queries.sparse[q], [corpus.sparse[i] for i in picked])
            elif mode == "colbert" and queries.colbert is not None and corpus.colbert is not None:
                out["colbert"] = maxsim_scores(queries.colbert[q], [corpus.colbert[i] for i in picked])
        return out

    def doc_id(self, where: Any) -> str:
        raise NotImplementedError("evaluation ranks corpus positions; it builds no hits")

    def hit(self, where: Any, score: float, scores: dict[str, float], doc_id: str | None) -> Hit:
        raise NotImplementedError("evaluation ranks corpus positions; it builds no hits")
