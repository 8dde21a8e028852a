"""trivec: BGE / BGE-M3 embeddings — dense, sparse and multi-vector outputs from one encoder."""

from trivec.errors import CheckpointError, InputError, TrivecError, UnsupportedOutputError
from trivec.inference import Embedder, EncodeResult, SparseVector
from trivec.models import M3Model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Embedder",
    "EncodeResult",
    "InputError",
    "M3Model",
    "SparseVector",
    "TrivecError",
    "UnsupportedOutputError",
    "__version__",
]
