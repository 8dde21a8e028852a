"""Models: an encoder backbone with BGE-M3's dense, sparse and multi-vector heads."""

from trivec.models.checkpoint import (
    DEFAULT_MODEL,
    M3_SMALL_MODEL,
    MINILM_M3_MODEL,
    MINILM_MODEL,
    OFFLINE_MODELS,
    minilm_heads_path,
    minilm_path,
    resolve_model_path,
)
from trivec.models.heads import ColbertHead, SparseHead
from trivec.models.m3 import M3Model, M3Output
from trivec.models.pooling import PoolingMode

__all__ = [
    "DEFAULT_MODEL",
    "M3_SMALL_MODEL",
    "MINILM_M3_MODEL",
    "MINILM_MODEL",
    "OFFLINE_MODELS",
    "ColbertHead",
    "M3Model",
    "M3Output",
    "PoolingMode",
    "SparseHead",
    "minilm_heads_path",
    "minilm_path",
    "resolve_model_path",
]
