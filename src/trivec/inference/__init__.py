"""Inference: encoding with token-budget batching, sparse vectors, and scoring."""

from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.scoring import (
    DEFAULT_WEIGHTS,
    dense_scores,
    hybrid_scores,
    lexical_matrix,
    lexical_score,
    lexical_scores,
    maxsim,
    maxsim_scores,
    normalize_weights,
)
from trivec.inference.sparse import SparseVector

__all__ = [
    "DEFAULT_WEIGHTS",
    "Embedder",
    "EncodeResult",
    "SparseVector",
    "dense_scores",
    "hybrid_scores",
    "lexical_matrix",
    "lexical_score",
    "lexical_scores",
    "maxsim",
    "maxsim_scores",
    "normalize_weights",
]
