"""`EncodeResult`: what `Embedder.encode` returns, with the row operations every layer needs — a slice of
rows (ingestion cuts a batch at segment boundaries, the server answers each request from a merged batch),
rows picked by index (evaluation fans distinct texts back out) and several results joined in order (the
server merges requests). One copy of the per-field rule: `dense` is an array, the other outputs a list with
one item per text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from trivec.inference.sparse import SparseVector

PER_TEXT = ("sparse", "colbert", "colbert_codes", "hidden_states")  # fields holding one item per text


@dataclass
class EncodeResult:
    """Outputs for N texts, in input order; a field is None when it was not asked for.

    dense: float32 `[N, D]`; sparse: one `SparseVector` per text; colbert: float32 `[T_i, D_c]` per text
    (one row per token after CLS, the final separator included); hidden_states: float32 `[T_i, H]` per text,
    one row per token, of the layer asked for (`trivec.inference.hidden`); colbert_codes: `(codes, scales)`
    per text in place of `colbert`, when `encode` was given a `colbert_coder`.
    """

    dense: np.ndarray | None = None
    sparse: list[SparseVector] | None = None
    colbert: list[np.ndarray] | None = None
    colbert_codes: list[tuple[np.ndarray, np.ndarray | None]] | None = None
    num_tokens: list[int] = field(default_factory=list)
    hidden_states: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.num_tokens)

    def rows(self, start: int, stop: int) -> EncodeResult:
        """Rows `start:stop` (the dense rows a view, not a copy)."""
        out = EncodeResult(num_tokens=self.num_tokens[start:stop])
        if self.dense is not None:
            out.dense = self.dense[start:stop]
        for name in PER_TEXT:
            items = getattr(self, name)
            if items is not None:
                setattr(out, name, items[start:stop])
        return out

    def take(self, indices: Sequence[int] | np.ndarray) -> EncodeResult:
        """The rows at `indices`, in that order (repeats allowed)."""
        picked = [int(i) for i in indices]
        out = EncodeResult(num_tokens=[self.num_tokens[i] for i in picked])
        if self.dense is not None:
            out.dense = self.dense[np.asarray(picked, dtype=np.int64)]
        for name in PER_TEXT:
            items = getattr(self, name)
            if items is not None:
                setattr(out, name, [items[i] for i in picked])
        return out

    @classmethod
    def concat(cls, parts: Sequence[EncodeResult]) -> EncodeResult:
        """Several results as one, in order, with the outputs the first part has."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        out = cls(num_tokens=[n for p in parts for n in p.num_tokens])
        if first.dense is not None:
            out.dense = np.concatenate([p.dense for p in parts if p.dense is not None])
        for name in PER_TEXT:
            if getattr(first, name) is not None:
                setattr(out, name, [item for p in parts for item in getattr(p, name) or []])
        return out
