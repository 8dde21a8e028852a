"""Inference: encoding with token-budget batching, sparse vectors, and scoring."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.inference.encoder import Embedder
    from trivec.inference.reranker import Reranker
    from trivec.inference.results import EncodeResult
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Embedder": "trivec.inference.encoder",
        "EncodeResult": "trivec.inference.results",
        "Reranker": "trivec.inference.reranker",
        "DEFAULT_WEIGHTS": "trivec.inference.scoring",
        "dense_scores": "trivec.inference.scoring",
        "hybrid_scores": "trivec.inference.scoring",
        "lexical_matrix": "trivec.inference.scoring",
        "lexical_score": "trivec.inference.scoring",
        "lexical_scores": "trivec.inference.scoring",
        "maxsim": "trivec.inference.scoring",
        "maxsim_scores": "trivec.inference.scoring",
        "normalize_weights": "trivec.inference.scoring",
        "SparseVector": "trivec.inference.sparse",
    },
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "Embedder",
    "EncodeResult",
    "Reranker",
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
