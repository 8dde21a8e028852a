"""trivec: BGE / BGE-M3 embeddings — dense, sparse and multi-vector outputs from one encoder."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports
from trivec.errors import CheckpointError, InputError, TrivecError, UnsupportedOutputError

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.inference import Embedder, EncodeResult, Reranker, SparseVector
    from trivec.models import M3Model

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Embedder": "trivec.inference.encoder",
        "EncodeResult": "trivec.inference.encoder",
        "Reranker": "trivec.inference.reranker",
        "SparseVector": "trivec.inference.sparse",
        "M3Model": "trivec.models.m3",
    },
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Embedder",
    "EncodeResult",
    "InputError",
    "M3Model",
    "Reranker",
    "SparseVector",
    "TrivecError",
    "UnsupportedOutputError",
    "__version__",
]
