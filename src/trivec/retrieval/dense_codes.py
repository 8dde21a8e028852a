"""Quantised copies of a segment's dense vectors for the flat first stage (`dense_quantization`): the codes
are scanned for every query, the float32 vectors (`dense.f32`, which stay on disk) re-score the
⌈k × oversampling⌉ rows they rank highest, so a search returns exact scores (`segment_search.py`).

* `int8`: per dimension, the minimum and maximum over the segment's rows (computed when the segment is
  written; a merge writes a new segment and computes them afresh from its float32 rows), 256 levels between
  them: `code = round((x − lo) / step)`, `step = (hi − lo) / 255`. `dense.codes` is uint8 [n, D],
  `dense.scale` float32 [2, D] (lo, step). The query stays float32: `score ≈ codes · (q ⊙ step) + q · lo`.
  (min/max rather than symmetric `round(127 · x / max|x|)`: the same recall after re-scoring on real
  vectors, slightly better where a dimension is not centred on 0, and one more level.)
* `binary`: the sign of each dimension (`x > 0`), eight to a byte (`np.packbits`, most significant bit first,
  as ColBERT's binary codes), `dense.codes` uint8 [n, ⌈D/8⌉]. Scored asymmetrically: the float32 query
  against the ±1 vector, `score ≈ Σ_d q_d · (x_d > 0 ? 1 : −1)`, through one 256-entry table per code byte
  (the sums of that byte's eight query values under each sign pattern) — not the Hamming distance to a
  binarised query, which is ≈ 4× faster per row but needs twice the oversampling for the same recall
  (measured in docs/scale.md, "Dense first stage: int8 / binary codes").

Both kernels run compiled with the GIL released, one row at a time against every query of the batch.
"""

from __future__ import annotations

import math

import numpy as np

from trivec.compiled import kernel

DENSE_QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "binary")
# rows re-scored per segment = ⌈k × oversampling⌉; the kind's default where the settings give none
DEFAULT_OVERSAMPLING = {"int8": 2.0, "binary": 8.0}
CODES, SCALE = "dense.codes", "dense.scale"
CHUNK_ROWS = 65_536  # rows encoded at once when a segment is written (16 MB of float32 at 64 dims × 1024)

# SIGNS[v, k]: bit k (most significant first) of byte v, as −1 / +1
SIGNS = (((np.arange(256)[:, None] >> (7 - np.arange(8))[None, :]) & 1) * 2 - 1).astype(np.float32)


def code_width(kind: str, dim: int) -> int:
    """Bytes per row of `dense.codes`."""
    return dim if kind == "int8" else -(-dim // 8)


def rescored_rows(k: int, oversampling: float) -> int:
    """How many rows the codes keep for re-scoring when `k` are wanted."""
    return max(k, math.ceil(k * oversampling - 1e-9))  # 100 × 1.1 is 110, not 111


def fit(kind: str, vectors: np.ndarray) -> np.ndarray | None:
    """The per-dimension parameters of a segment's codes: int8 `[lo, step]` float32 [2, D]; binary none.
    `vectors` may be a memory map: read `CHUNK_ROWS` rows at a time."""
    if kind == "binary":
        return None
    rows, dim = int(vectors.shape[0]), int(vectors.shape[1])
    lo = np.zeros(dim, np.float32)
    hi = np.zeros(dim, np.float32)
    for start in range(0, rows, CHUNK_ROWS):
        block = np.asarray(vectors[start : start + CHUNK_ROWS], dtype=np.float32)
        low, high = block.min(axis=0), block.max(axis=0)
        lo, hi = (low, high) if start == 0 else (np.minimum(lo, low), np.maximum(hi, high))
    step = np.where(hi > lo, (hi - lo) / np.float32(255.0), np.float32(1.0)).astype(np.float32)
    return np.stack([lo, step]).astype(np.float32)


def encode(kind: str, rows: np.ndarray, scale: np.ndarray | None) -> np.ndarray:
    """uint8 codes of float32 `rows` [n, D] (`scale`: what `fit` gave for their segment)."""
    rows = np.asarray(rows, dtype=np.float32)
    if kind == "binary":
        return np.packbits(rows > 0, axis=1)
    assert scale is not None
    lo, step = scale[0], scale[1]
    return np.clip(np.rint((rows - lo) / step), 0, 255).astype(np.uint8)


def decode(kind: str, codes: np.ndarray, scale: np.ndarray | None, dim: int) -> np.ndarray:
    """The float32 vectors the codes stand for (int8: `lo + code · step`; binary: ±1) — what the scores of
    `approximate_scores` are inner products with (for tests and checks; searches never decode)."""
    if kind == "binary":
        return np.unpackbits(np.asarray(codes, dtype=np.uint8), axis=1, count=dim).astype(np.float32) * 2 - 1
    assert scale is not None
    return scale[0] + np.asarray(codes, dtype=np.float32) * scale[1]


def approximate_scores(
    kind: str, codes: np.ndarray, scale: np.ndarray | None, queries: np.ndarray
) -> np.ndarray:
    """`[n, Q]` float32 scores of every row's codes against each query (float32 [Q, D])."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    out = np.empty((int(codes.shape[0]), int(q.shape[0])), dtype=np.float32)
    if kind == "int8":
        assert scale is not None
        # einsum, not BLAS: no OpenBLAS thread pool woken for a few hundred numbers
        offsets = np.einsum("qd,d->q", q, scale[0]).astype(np.float32)
        _int8_scores(codes, np.ascontiguousarray(q * scale[1]), offsets, out)
    else:
        _table_scores(codes, byte_tables(q, int(codes.shape[1])), out)
    return out


def byte_tables(queries: np.ndarray, width: int) -> np.ndarray:
    """`[Q, width, 256]` float32: entry `[j, b, v]` is query j's part of the score of a row whose code byte
    b is v — the sum of the query's values at dimensions 8b … 8b+7 with the signs of v's bits."""
    q = np.zeros((queries.shape[0], width * 8), dtype=np.float32)
    q[:, : queries.shape[1]] = queries  # padding dimensions add 0 whatever their bit
    return np.ascontiguousarray(np.einsum("qwk,vk->qwv", q.reshape(q.shape[0], width, 8), SIGNS))


@kernel(fastmath=True)
def _int8_scores(  # pragma: no cover - compiled
    codes: np.ndarray, weights: np.ndarray, offsets: np.ndarray, out: np.ndarray
) -> None:
    """`out[i, j] = Σ_d codes[i, d] · weights[j, d] + offsets[j]` (each row read once for every query; the
    sum over d vectorised, hence fastmath)."""
    for i in range(codes.shape[0]):
        for j in range(weights.shape[0]):
            acc = np.float32(0.0)
            for d in range(codes.shape[1]):
                acc += np.float32(codes[i, d]) * weights[j, d]
            out[i, j] = acc + offsets[j]


@kernel()
def _table_scores(codes: np.ndarray, tables: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """`out[i, j] = Σ_b tables[j, b, codes[i, b]]`: a binary row's score against query j."""
    for i in range(codes.shape[0]):
        for j in range(tables.shape[0]):
            acc = np.float32(0.0)
            for b in range(codes.shape[1]):
                acc += tables[j, b, codes[i, b]]
            out[i, j] = acc


def warm_up() -> None:
    """Compile (or load from numba's cache) both kernels now rather than on the first query (for codes
    read from a memory map: read-only arrays, which numba compiles apart)."""
    queries = np.ones((1, 8), np.float32)
    for kind in ("int8", "binary"):
        codes = encode(kind, queries, fit(kind, queries))
        codes.flags.writeable = False
        approximate_scores(kind, codes, fit(kind, queries), queries)
