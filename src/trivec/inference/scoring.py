"""Scoring functions for the three outputs and their weighted hybrid.

dense: dot product of (normalised) vectors; sparse: lexical matching Σ_{t∈q∩p} w_q(t)·w_p(t);
colbert: exact MaxSim (1/N_q) Σ_i max_j ⟨q_i, p_j⟩ over each passage's own rows — never padded, so a score
does not depend on what else is scored with it (unlike FlagEmbedding's batched path, which maxes over zero
padding rows: docs/differences.md Q1).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from trivec.compiled import kernel
from trivec.inference.sparse import SparseVector

# the weights are defined with the model (a model may carry its own); re-exported here with the scoring
from trivec.models.weights import DEFAULT_WEIGHTS as DEFAULT_WEIGHTS
from trivec.models.weights import MODES as MODES
from trivec.models.weights import normalize_weights as normalize_weights


def dense_scores(queries: np.ndarray, passages: np.ndarray) -> np.ndarray:
    """`[Nq, D] × [Np, D] → [Nq, Np]` (a 1-D query gives `[Np]`)."""
    return np.asarray(queries, dtype=np.float32) @ np.asarray(passages, dtype=np.float32).T


def lexical_score(query: SparseVector, passage: SparseVector) -> float:
    """Lexical matching score of one pair (0.0 when no token is shared)."""
    _, qi, pi = np.intersect1d(query.indices, passage.indices, assume_unique=True, return_indices=True)
    if qi.size == 0:
        return 0.0
    return float(np.dot(query.values[qi].astype(np.float64), passage.values[pi].astype(np.float64)))


def lexical_scores(query: SparseVector, passages: Sequence[SparseVector]) -> np.ndarray:
    """One query against many passages, `[Np]` float32."""
    if not passages:
        return np.zeros(0, dtype=np.float32)
    if len(query) == 0:
        return np.zeros(len(passages), dtype=np.float32)
    lookup = dict(zip(query.indices.tolist(), query.values.tolist(), strict=True))
    out = np.zeros(len(passages), dtype=np.float32)
    ids = np.concatenate([p.indices for p in passages])
    vals = np.concatenate([p.values for p in passages]).astype(np.float64)
    owner = np.repeat(np.arange(len(passages)), [len(p) for p in passages])
    hit = np.isin(ids, query.indices)
    if hit.any():
        qvals = np.fromiter((lookup[i] for i in ids[hit].tolist()), dtype=np.float64, count=int(hit.sum()))
        out[:] = np.bincount(owner[hit], weights=vals[hit] * qvals, minlength=len(passages))
    return out


def lexical_matrix(queries: Sequence[SparseVector], passages: Sequence[SparseVector]) -> np.ndarray:
    """`[Nq, Np]` lexical matching scores."""
    return (
        np.stack([lexical_scores(q, passages) for q in queries])
        if queries
        else np.zeros((0, len(passages)), np.float32)
    )


def maxsim(query: np.ndarray, passage: np.ndarray) -> float:
    """Exact ColBERT MaxSim of one pair: mean over query rows of the best dot product with a passage row."""
    if query.shape[0] == 0 or passage.shape[0] == 0:
        return 0.0
    sims = np.asarray(query, dtype=np.float32) @ np.asarray(passage, dtype=np.float32).T
    return float(sims.max(axis=1).mean())


def maxsim_scores(query: np.ndarray, passages: Sequence[np.ndarray]) -> np.ndarray:
    """One query against many passages: one matmul over all passage rows, then a max per passage segment."""
    if not passages:
        return np.zeros(0, dtype=np.float32)
    lengths = np.array([p.shape[0] for p in passages], dtype=np.int64)
    if not lengths.any():
        return np.zeros(len(passages), dtype=np.float32)
    rows = np.concatenate([p for p in passages if p.shape[0] > 0])
    return maxsim_block(query, rows, lengths)


def maxsim_block(query: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """MaxSim of one query against passages stored back to back: `rows` [ΣT, d] holds passage i's
    `lengths[i]` token vectors after passage i-1's. Passages without tokens score 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    return maxsim_chunked(
        query, lambda i, j: (rows[ends[i] - lengths[i] : ends[j - 1]], None), lengths, rows.shape[-1]
    )


CHUNK_ELEMENTS = 1 << 20  # numbers of the token rows widened and multiplied at once (4 MB as float32)


def maxsim_chunked(
    query: np.ndarray,
    fetch: Callable[[int, int], tuple[np.ndarray, np.ndarray | None]],
    lengths: np.ndarray,
    dim: int,
) -> np.ndarray:
    """MaxSim of one query against passages whose token rows `fetch(i, j)` gives for passages `i … j-1`
    (back to back, `lengths` rows each; float16 or float32) with each row's scale (or None: rows as they
    are), a chunk of about `CHUNK_ELEMENTS` numbers at a time. float16 rows are widened in a small reused
    buffer: a re-rank of a few hundred long passages never holds them all in float32 (allocating and
    page-faulting tens of megabytes per query cost more than the arithmetic); float32 rows are multiplied as
    given. A row's scale multiplies its similarities (query tokens wide), not the row (dimensions wide).
    Passages without tokens score 0."""
    lengths = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(lengths.shape[0], dtype=np.float32)
    if query.shape[0] == 0 or not lengths.any():
        return out
    torch: Any = importlib.import_module("torch")
    right = torch.from_numpy(np.ascontiguousarray(np.asarray(query, dtype=np.float32).T))
    cap = max(1, CHUNK_ELEMENTS // max(dim, 1))
    tq = int(query.shape[0])
    ends = np.cumsum(lengths)
    with _SCRATCH.take(cap, dim, tq) as (widened, sims):
        i, n = 0, lengths.shape[0]
        while i < n:
            first_row = int(ends[i] - lengths[i])
            j = max(i + 1, int(np.searchsorted(ends, first_row + cap, side="right")))  # ≥ 1 passage a chunk
            rows = int(ends[j - 1]) - first_row
            block, row_scales = fetch(i, j)
            if rows > cap:  # one passage longer than a chunk: its own buffers
                product = torch.mm(_as_tensor(torch, block).float(), right)
            else:
                if _is_own_float32(block):
                    left = torch.from_numpy(block)
                else:
                    left = widened[:rows]
                    left.copy_(_as_tensor(torch, block))  # float16 → float32 in place, vectorised
                product = torch.mm(left, right, out=sims[: rows * tq].view(rows, tq))
            if row_scales is not None:
                product.mul_(torch.from_numpy(np.ascontiguousarray(row_scales, dtype=np.float32))[:, None])
            _segment_maxsim(product.numpy(), lengths[i:j], out[i:j])
            i = j
    return out


def _is_own_float32(block: np.ndarray) -> bool:
    """A float32 array torch can multiply in place of a widened copy (contiguous, writeable)."""
    return block.dtype == np.float32 and block.flags.c_contiguous and block.flags.writeable


def _as_tensor(torch: Any, block: np.ndarray) -> Any:
    stored = np.ascontiguousarray(block)
    if stored.dtype not in (np.float16, np.float32):
        stored = stored.astype(np.float32)
    return torch.from_numpy(stored if stored.flags.writeable else stored.copy())


class _Scratch:
    """Float32 buffers for `maxsim_chunked` — widened rows [cap, d] and similarities (cap × Tq numbers) —
    shared by the threads that re-rank: a search takes a pair and gives it back; a few pairs are kept."""

    def __init__(self, keep: int = 4) -> None:
        self._free: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._keep = keep

    @contextmanager
    def take(self, rows: int, dim: int, tq: int) -> Iterator[tuple[Any, Any]]:
        """`(widened [rows, dim], sims [rows × tq numbers, flat])`."""
        torch: Any = importlib.import_module("torch")
        pair = None
        with self._lock:
            for k, (widened, sims) in enumerate(self._free):
                if widened.shape[0] >= rows and widened.shape[1] == dim and sims.shape[0] >= rows * tq:
                    pair = self._free.pop(k)
                    break
        if pair is None:
            pair = (
                torch.empty((rows, dim), dtype=torch.float32),
                torch.empty(rows * tq, dtype=torch.float32),
            )
        try:
            yield pair
        finally:
            with self._lock:
                if len(self._free) < self._keep:
                    self._free.append(pair)


_SCRATCH = _Scratch()


@kernel()
def _segment_maxsim(sims: np.ndarray, lengths: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """`out[i]` = mean over query tokens of the best similarity among passage i's rows of `sims`
    (passages back to back, `lengths[i]` rows each; empty passages keep their 0). One pass, no copies."""
    tq = sims.shape[1]
    best = np.empty(tq, dtype=np.float32)
    start = 0
    for i in range(lengths.shape[0]):
        length = lengths[i]
        if length == 0:
            continue
        best[:] = sims[start]
        for t in range(start + 1, start + length):
            for j in range(tq):
                if sims[t, j] > best[j]:
                    best[j] = sims[t, j]
        total = 0.0
        for j in range(tq):
            total += best[j]
        out[i] = total / tq
        start += length


def warm_up() -> None:
    """Compile (or load from numba's on-disk cache) the MaxSim kernel now rather than in the first re-rank."""
    maxsim_block(np.ones((1, 2), np.float32), np.ones((1, 2), np.float16), np.ones(1, np.int64))


def hybrid_scores(scores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean Σ w_m·s_m / Σ w_m over the modes present in `scores` (as the reference normalises)."""
    used = [m for m in MODES if m in scores and weights.get(m, 0.0) > 0]
    if not used:
        raise ValueError(f"no mode with a positive weight among the computed scores {sorted(scores)}")
    total = sum(weights[m] for m in used)
    # each weight divided by the total first: Σ s·w / Σ w rounds badly for denormal weights (5e-324 · 1.5 → 1e-323)
    return sum(np.asarray(scores[m], dtype=np.float64) * (weights[m] / total) for m in used)  # type: ignore[return-value]


def with_hybrids(scores: dict[str, np.ndarray], weights: dict[str, float]) -> dict[str, np.ndarray]:
    """`scores` (per mode) with the fused rows added under FlagEmbedding's names: "sparse+dense" when both
    are there, "colbert+sparse+dense" over every mode present when ColBERT is, with `weights`."""
    if "sparse" in scores and "dense" in scores:
        pair: dict[str, np.ndarray] = {"dense": scores["dense"], "sparse": scores["sparse"]}
        scores["sparse+dense"] = hybrid_scores(pair, weights).astype(np.float32)
    if len(scores) > 1 and "colbert" in scores:
        base: dict[str, np.ndarray] = {k: scores[k] for k in ("dense", "sparse", "colbert") if k in scores}
        scores["colbert+sparse+dense"] = hybrid_scores(base, weights).astype(np.float32)
    return scores
