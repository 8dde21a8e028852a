"""How ColBERT token vectors are stored: pooled (`pool_factor`, `pooling.py`), optionally projected to fewer
dimensions, then coded as fp16, fp32, int8, int4 or binary (the last three with a per-row float32 scale), or
as residual codes (`residual1` / `residual2`: a centroid id and 1 or 2 bits per dimension, `residual.py`).

Reduced dimensions use the top right-singular vectors of (uncentred) token vectors from the first documents
added, so inner products — what MaxSim sums — are kept as well as a rank-`dim` map can; queries are
projected with the same matrix (and never pooled). int8 stores `round(127·x/max|x|)` per row and the row's
scale; int4 `round(7·x/max|x|)` two to a byte (low nibble first, offset by 8); binary the signs, eight to a
byte (numpy's `packbits`, big-endian bits), decoded as `±mean|x|` — the scale that minimises the row's
squared error. Residual codes need a codebook fitted on the first documents' tokens, like the projection.
Scoring decodes exactly what is stored. benchmarks/colbert_quality.py measures what each
option costs in nDCG@10 against bytes per document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from trivec.compiled import kernel
from trivec.errors import InputError
from trivec.retrieval.pooling import check_pool_factor, check_pool_floor, pool_tokens, pooled_count
from trivec.retrieval.residual import FIT_SAMPLE, RESIDUAL_BITS, ResidualCodes, fit_residual

ColbertDtype = Literal["float16", "float32", "int8", "int4", "binary", "residual1", "residual2"]
COLBERT_DTYPES: tuple[str, ...] = ("float16", "float32", "int8", "int4", "binary", *RESIDUAL_BITS)
SCALED = ("int8", "int4", "binary")  # coded with a per-row scale (colbert.scale)
FITTED = tuple(RESIDUAL_BITS)  # coded with a codebook fitted on the first documents (`residual.py`)
PACKED = {"int4": 2, "binary": 8}  # values per stored byte
PROJECTION_SAMPLE = 65536


@dataclass
class ColbertCodec:
    """Encode / decode stored token vectors; `projection [D, dim]` when dimensions are reduced;
    `pool_factor` > 1 pools each document's tokens before they are coded, to no fewer than `pool_floor`
    (`pooling.pooled_count`); `residual`: the fitted codebook of residual codes (None until it is fitted)."""

    dtype: str = "float16"
    projection: np.ndarray | None = None
    pool_factor: int = 1
    residual: ResidualCodes | None = None
    pool_floor: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in COLBERT_DTYPES:
            raise InputError(f"colbert dtype must be one of {', '.join(COLBERT_DTYPES)}, got {self.dtype!r}")
        check_pool_factor(self.pool_factor)
        check_pool_floor(self.pool_floor)
        if self.residual is not None and RESIDUAL_BITS.get(self.dtype) != self.residual.bits:
            raise InputError(f"a {self.residual.bits}-bit residual codebook does not code {self.dtype}")

    def needs_fit(self, dim: int | None) -> bool:
        """Whether the codec still has something to fit (`fit_codec`): the projection to `dim` dimensions (None:
        full) on the first documents written, or a residual codebook once staged rows fill its sample."""
        return self.waits_for_projection(dim) or self.staged

    def waits_for_projection(self, dim: int | None) -> bool:
        """Whether rows are projected to `dim` dimensions (None: full) by a projection not fitted yet."""
        return dim is not None and self.projection is None

    @property
    def staged(self) -> bool:
        """Whether rows wait for a codebook: residual codes not fitted yet. Until then an index stores them
        as `staging()` does (the store fits the codebook once `FIT_SAMPLE` stored tokens are there)."""
        return self.dtype in FITTED and self.residual is None

    def staging(self) -> ColbertCodec:
        """How rows are stored while residual codes wait for their codebook: float16, pooled and projected as
        the codes will be — coded later from exactly these values (`code`)."""
        return replace(self, dtype="float16", residual=None)

    def fitting_sample(self, documents: list[np.ndarray]) -> list[np.ndarray]:
        """Token vectors as this codec stores them (pooled, projected), of `documents`: what a residual
        codebook is fitted on."""
        return [self.project(self.pooled(rows)) for rows in documents]

    @property
    def storage_dtype(self) -> np.dtype:
        """The numpy type of `colbert.codes` (packed codes: bytes)."""
        names = {"float16": np.float16, "float32": np.float32, "int8": np.int8}
        return np.dtype(names.get(self.dtype, np.uint8))

    @property
    def has_scales(self) -> bool:
        return self.dtype in SCALED

    @property
    def decodes(self) -> bool:
        """Whether stored rows must be decoded before the matmul (fp16 / fp32 are widened as they are)."""
        return self.dtype in SCALED or self.dtype in FITTED

    def stored_dim(self, dim: int) -> int:
        """Dimensions of a stored (decoded) token vector."""
        return int(self.projection.shape[1]) if self.projection is not None else dim

    def code_width(self, dim: int) -> int:
        """Columns of `colbert.codes` for `dim`-dimensional vectors (bytes per row when packed)."""
        if self.dtype in FITTED:
            return self._codebook().code_width(dim)
        per_byte = PACKED.get(self.dtype, 1)
        return -(-dim // per_byte)

    def bytes_per_token(self, dim: int) -> int:
        """Stored bytes of one token vector of `dim` dimensions (codes and scale)."""
        width = self.code_width(self.stored_dim(dim)) * self.storage_dtype.itemsize
        return width + (4 if self.has_scales else 0)

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
        """`(codes, scales)` of one document's token vectors (pooled, projected, coded; scales only for the
        scaled codes)."""
        return self.code(self.project(self.pooled(rows)))

    def pooled(self, rows: np.ndarray) -> np.ndarray:
        """One document's token vectors pooled as stored (as given at pool factor 1)."""
        return pool_tokens(rows, self.pool_factor, self.pool_floor) if self.pool_factor > 1 else rows

    def stored_tokens(self, tokens: int) -> int:
        """How many vectors a document of `tokens` token vectors stores."""
        return pooled_count(tokens, self.pool_factor, self.pool_floor) if self.pool_factor > 1 else tokens

    def code(self, projected: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`(codes, scales)` of token vectors already in the stored space (pooled, projected). Residual codes
        are computed from the rows' float16 values — what a row staged before the codebook holds —, so a
        row coded at once and one staged first get the same codes."""
        if self.dtype in FITTED:
            return self._codebook().encode(np.asarray(projected, np.float16).astype(np.float32)), None
        if self.dtype in ("float16", "float32"):
            return projected.astype(self.storage_dtype), None
        if self.dtype == "binary":
            scale = np.abs(projected).mean(axis=1) if projected.size else np.zeros(0)
            return np.packbits(projected > 0, axis=1), scale.astype(np.float32)  # a zero row stays zero
        top = 127.0 if self.dtype == "int8" else 7.0
        scale = _nonzero(np.abs(projected).max(axis=1) / top if projected.size else np.zeros(0, np.float32))
        codes = np.clip(np.rint(projected / scale[:, None]), -top, top)
        if self.dtype == "int8":
            return codes.astype(np.int8), scale
        nibbles = (codes + 8).astype(np.uint8)
        if nibbles.shape[1] % 2:
            nibbles = np.concatenate([nibbles, np.full((nibbles.shape[0], 1), 8, np.uint8)], axis=1)
        return nibbles[:, 0::2] | (nibbles[:, 1::2] << 4), scale

    def decode(self, codes: np.ndarray, scales: np.ndarray | None, dim: int | None = None) -> np.ndarray:
        """float32 token vectors from stored codes (`dim`: the vectors' dimensions, for packed codes whose
        last byte is part padding; default: every bit / nibble)."""
        values = self.unscaled(codes, dim)
        if not self.has_scales:
            return values
        assert scales is not None
        return values * np.asarray(scales, dtype=np.float32)[:, None]

    def unscaled(
        self, codes: np.ndarray, dim: int | None = None, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """float32 values of stored codes before their per-row scale: a search multiplies the scores of a
        row by its scale instead (a query has far fewer tokens than a vector has dimensions); residual codes,
        which have no scale, decoded whole. `rows`: only
        those rows of `codes`, in that order (a re-rank's candidates' tokens of a whole segment's codes).
        Packed codes are gathered and unpacked by one compiled loop — no gathered copy, and numpy would need a
        pass per nibble or bit and a temporary each."""
        if self.dtype in ("float16", "float32", "int8"):
            return np.asarray(codes if rows is None else codes[rows], dtype=np.float32)
        if self.dtype in FITTED:
            return self._codebook().decode(codes, rows, dim)
        packed = np.asarray(codes)  # a memory map's pages, read in place
        if packed.dtype != np.uint8 or not packed.flags.c_contiguous:
            packed = np.ascontiguousarray(packed, dtype=np.uint8)
        picked = np.arange(packed.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        width = packed.shape[1] * PACKED[self.dtype]
        out = np.empty((picked.shape[0], width if dim is None else min(dim, width)), dtype=np.float32)
        (_unpack_int4 if self.dtype == "int4" else _unpack_bits)(packed, picked, out)
        return out

    def _codebook(self) -> ResidualCodes:
        if self.residual is None:
            raise InputError(
                f"{self.dtype} ColBERT codes have no codebook yet: it is fitted on the first documents an "
                "index writes (`fit_residual`)"
            )
        return self.residual


@kernel()
def _unpack_int4(packed: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """`out[r]`: the nibbles of row `rows[r]`, low first, minus 8 (as many as `out` has columns). The whole
    bytes go through a loop without branches (LLVM vectorises it: ≈ 1.8× a test per nibble), an odd last
    column after."""
    columns = out.shape[1]
    whole = min(packed.shape[1], columns // 2)
    odd = 2 * whole < columns and whole < packed.shape[1]
    for r in range(rows.shape[0]):
        row = packed[rows[r]]
        target = out[r]
        for b in range(whole):
            byte = row[b]
            target[2 * b] = np.float32(byte & 15) - np.float32(8.0)
            target[2 * b + 1] = np.float32(byte >> 4) - np.float32(8.0)
        if odd:
            target[2 * whole] = np.float32(row[whole] & 15) - np.float32(8.0)


@kernel()
def _unpack_bits(packed: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """`out[r]`: the bits of row `rows[r]`, most significant first (`np.packbits`), as -1 / +1: eight columns
    per whole byte without branches (≈ 3.8× a shift and test per column), a last partial byte's after."""
    columns = out.shape[1]
    whole = min(packed.shape[1], columns // 8)
    for r in range(rows.shape[0]):
        row = packed[rows[r]]
        target = out[r]
        for b in range(whole):
            byte = row[b]
            for k in range(8):
                target[8 * b + k] = np.float32(2.0) * np.float32((byte >> (7 - k)) & 1) - np.float32(1.0)
        for c in range(8 * whole, columns):
            bit = (row[c >> 3] >> (7 - (c & 7))) & 1
            target[c] = np.float32(2.0) * np.float32(bit) - np.float32(1.0)


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """Per-row scales as float32, 1 where a row is all zeros (its codes are zeros whatever the scale)."""
    return np.where(scale > 0, scale, 1.0).astype(np.float32)


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


def fit_codec(
    codec: ColbertCodec,
    documents: list[np.ndarray],
    dim: int | None,
    staged: Sequence[np.ndarray] = (),
    residual: bool = True,
) -> tuple[ColbertCodec, dict[str, tuple[np.ndarray, dict[str, Any]]]]:
    """`codec` with what it learns from the first documents' ColBERT rows (`documents`, one matrix each): the
    projection to `dim` dimensions when `dim` is given, then — when `residual` — the codebook of residual
    codes, fitted on the rows as they are stored (pooled, projected), `staged` ones (already stored so, while
    the codebook waited) included. Also what to store with the index, by manifest key: `(float32 values, the
    record's other fields)`; empty when there was nothing to fit."""
    fitted: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    if dim is not None and codec.waits_for_projection(dim):  # `dim is not None`: for the type checker
        projection = fit_projection(documents, dim)  # fitted at the first write: nothing staged yet
        fitted["projection"] = (projection, {"shape": list(projection.shape)})
        codec = replace(codec, projection=projection)
    if residual and codec.staged:
        sample = [*staged, *codec.fitting_sample(documents)]
        book = fit_residual(sample, RESIDUAL_BITS[codec.dtype])
        record = {"centroids": book.count, "dim": book.dim, "bits": book.bits}
        fitted["residual"] = (book.to_array(), record)
        codec = replace(codec, residual=book)
    return codec, fitted


def popping(items: list[Any]) -> Iterator[Any]:
    """`items` in order, each let go by the list as it is handed out: held batches, written one by one, are
    not kept until the last of them is written."""
    items.reverse()
    while items:
        yield items.pop()


def fills_fit_sample(tokens: int) -> bool:
    """Whether `tokens` stored token vectors make the sample a residual codebook is fitted on (`FIT_SAMPLE`):
    one batch of 256 documents gave a codebook of 512–1,024 centroids, the full sample 4,096, and out of
    sample that cuts the loss against uncoded vectors (docs/scale.md)."""
    return tokens >= FIT_SAMPLE


def leading_for_fit(batches: Iterator[tuple[Any, Any]], codec: ColbertCodec) -> list[tuple[Any, Any]]:
    """The leading `(chunks, EncodeResult)` batches of `batches` whose ColBERT rows make `FIT_SAMPLE` stored
    (pooled) token vectors — all of them when fewer —, taken from the iterator: what a projection is fitted
    on before the first of them is written. The held float32 rows (≈ `FIT_SAMPLE` × pool factor) wait
    meanwhile: ≈ 100 MB per pool factor at 384 dimensions."""
    held: list[tuple[Any, Any]] = []
    tokens = 0
    for item in batches:
        held.append(item)
        tokens += sum(codec.stored_tokens(rows.shape[0]) for rows in item[1].colbert or [])
        if fills_fit_sample(tokens):
            break
    return held
