"""Models: an encoder backbone with BGE-M3's dense, sparse and multi-vector heads."""

from trivec.models.checkpoint import (
    DEFAULT_DENSE_MODEL,
    DEFAULT_MODEL,
    default_heads_path,
    default_model_path,
    resolve_model_path,
)
from trivec.models.heads import ColbertHead, SparseHead
from trivec.models.m3 import M3Model, M3Output
from trivec.models.pooling import PoolingMode

__all__ = [
    "DEFAULT_DENSE_MODEL",
    "DEFAULT_MODEL",
    "ColbertHead",
    "M3Model",
    "M3Output",
    "PoolingMode",
    "SparseHead",
    "default_heads_path",
    "default_model_path",
    "resolve_model_path",
]
