"""How ColBERT token vectors are stored: fp16 (default), fp32, int8 with a per-row scale; optionally
projected to fewer dimensions.

Reduced dimensions use the top right-singular vectors of (uncentred) token vectors from the first batch
added, so inner products — what MaxSim sums — are kept as well as a rank-`dim` map can; queries are
projected with the same matrix. int8 stores `round(127·x/max|x|)` per row and the row's scale.
benchmarks/search.py measures what each option costs in nDCG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trivec.errors import InputError

ColbertDtype = Literal["float16", "float32", "int8"]
COLBERT_DTYPES: tuple[str, ...] = ("float16", "float32", "int8")
PROJECTION_SAMPLE = 65536


@dataclass
class ColbertCodec:
    """Encode / decode stored token vectors; `projection [D, dim]` when dimensions are reduced."""

    dtype: str = "float16"
    projection: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.dtype not in COLBERT_DTYPES:
            raise InputError(f"colbert dtype must be one of {', '.join(COLBERT_DTYPES)}, got {self.dtype!r}")

    @property
    def storage_dtype(self) -> np.dtype:
        return np.dtype({"float16": np.float16, "float32": np.float32, "int8": np.int8}[self.dtype])

    @property
    def has_scales(self) -> bool:
        return self.dtype == "int8"

    def stored_dim(self, dim: int) -> int:
        return int(self.projection.shape[1]) if self.projection is not None else dim

    def project(
        self, rows: np.ndarray, matmul: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """Token vectors (document or query) in the stored space, float32. `matmul(a, b)`: `a @ b.T` by
        another route than numpy's (searches use torch on their own thread: `trivec.compiled.rows_times`)."""
        rows = np.asarray(rows, dtype=np.float32)
        if self.projection is None:
            return rows
        if rows.shape[-1] != self.projection.shape[0]:
            raise InputError(
                f"ColBERT vectors have {rows.shape[-1]} dimensions, the index projects from {self.projection.shape[0]}"
            )
        if matmul is not None:
            return np.asarray(matmul(rows, np.ascontiguousarray(self.projection.T)), dtype=np.float32)
        return rows @ self.projection

    def encode(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`(codes, scales)` of token vectors (scales only for int8)."""
        projected = self.project(rows)
        if self.dtype != "int8":
            return projected.astype(self.storage_dtype), None
        scale = np.abs(projected).max(axis=1) / 127.0 if projected.size else np.zeros(0, np.float32)
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        codes = np.clip(np.rint(projected / scale[:, None]), -127, 127).astype(np.int8)
        return codes, scale

    def decode(self, codes: np.ndarray, scales: np.ndarray | None) -> np.ndarray:
        """float32 token vectors from stored codes."""
        if self.dtype == "int8":
            assert scales is not None
            return codes.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None]
        return np.asarray(codes, dtype=np.float32)


def fit_projection(samples: list[np.ndarray], dim: int, seed: int = 0) -> np.ndarray:
    """`[D, dim]` orthonormal map onto the top right-singular vectors of the sampled token vectors."""
    rows = np.concatenate([s for s in samples if s.shape[0]]).astype(np.float32) if samples else None
    if rows is None or rows.shape[0] == 0:
        raise InputError("reduced ColBERT dimensions need token vectors to fit the projection on")
    full = rows.shape[1]
    if not 1 <= dim < full:
        raise InputError(f"colbert_dim must be between 1 and {full - 1} (the model's is {full}), got {dim}")
    if rows.shape[0] > PROJECTION_SAMPLE:
        pick = np.random.default_rng(seed).choice(rows.shape[0], PROJECTION_SAMPLE, replace=False)
        rows = rows[np.sort(pick)]
    _, _, vt = np.linalg.svd(rows.astype(np.float64), full_matrices=False)
    return np.ascontiguousarray(vt[:dim].T.astype(np.float32))
