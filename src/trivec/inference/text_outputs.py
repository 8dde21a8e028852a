"""Per-text outputs of `Embedder.encode`, filled batch by batch from whichever forward pass ran, and MCLS slots.

The padded forward (`M3Output`: one row of `L` positions per text) and the packed one (`PackedOutput`: every
real token back to back, `offsets` per text) give the same outputs in two shapes. `TextOutputs` turns either
into the outputs of each text at its input position: its dense vector, its `SparseVector` (special tokens
left out) and its ColBERT rows — the tokens after its first, less the extra CLS tokens that MCLS inserts
(`insert_cls_slots`), so that both paths and the MCLS rule live in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from trivec.inference.sparse import SparseVector

if TYPE_CHECKING:  # annotations only
    from trivec.inference.packed import PackedOutput
    from trivec.models.m3 import M3Output

MCLS_INTERVAL = 256

# `(codes, scales)` of one text's ColBERT rows: what an index stores of them (`ColbertCodec.encode`)
ColbertCoder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
# `(keys, weights)` of one text from its token ids and their weights (`trivec.models.casing.LowercaseKeys`)
SparseKeys = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def insert_cls_slots(
    ids: list[list[int]], cls_id: int, limit: int
) -> tuple[list[list[int]], list[list[int]]]:
    """MCLS: put an extra CLS before every 256th token, trimming content so the result fits `limit`."""
    out_ids: list[list[int]] = []
    out_slots: list[list[int]] = []
    for row in ids:
        head, body, tail = row[:1], row[1:-1], row[-1:]
        while 1 + len(body) + len(tail) + (len(body) // MCLS_INTERVAL) > limit:
            body = body[: limit - len(tail) - 1 - (len(body) // MCLS_INTERVAL)]
        new = list(head)
        slots = [0]
        for start in range(0, len(body), MCLS_INTERVAL):
            if start > 0:
                slots.append(len(new))
                new.append(cls_id)
            new.extend(body[start : start + MCLS_INTERVAL])
        new.extend(tail)
        out_ids.append(new)
        out_slots.append(slots)
    return out_ids, out_slots


def _without_cls_slots(rows: np.ndarray, slots: list[int] | None) -> np.ndarray:
    """A text's ColBERT rows (one per token after its first) without those of the extra CLS tokens, contiguous."""
    if slots is not None and len(slots) > 1:
        keep = np.ones(rows.shape[0], dtype=bool)
        keep[np.asarray(slots[1:]) - 1] = False
        rows = rows[keep]
    return np.ascontiguousarray(rows)


class TextOutputs:
    """The outputs asked for of every text (`ids`: their token ids; `slots`: their MCLS slots, or None),
    filled batch by batch; an output not asked for stays None. With `colbert_coder`, each text's ColBERT rows
    are coded as their forward pass gives them and only the codes are kept (`colbert_codes`): an index
    build then holds one pass's float32 rows, not a whole batch's."""

    def __init__(
        self,
        ids: list[list[int]],
        slots: list[list[int]] | None,
        skip_ids: frozenset[int],
        hidden_size: int,
        *,
        dense: bool,
        sparse: bool,
        colbert: bool,
        colbert_coder: ColbertCoder | None = None,
        sparse_keys: SparseKeys | None = None,
        own_from: list[int] | None = None,
    ) -> None:
        n = len(ids)
        self.ids, self.slots, self.skip_ids = ids, slots, skip_ids
        self.dense: np.ndarray | None = np.zeros((n, hidden_size), dtype=np.float32) if dense else None
        self.sparse: list[SparseVector | None] | None = [None] * n if sparse else None
        self.colbert: list[np.ndarray | None] | None = [None] * n if colbert else None
        self.coder = colbert_coder
        self.sparse_keys = sparse_keys  # re-keys a text's token weights (the model's, if any)
        self.own_from = own_from  # where each text's own tokens begin: its prompt's get no lexical weight
        self.codes: list[tuple[np.ndarray, np.ndarray | None] | None] = [None] * n if colbert_coder else []

    def _slots(self, i: int) -> list[int] | None:
        return self.slots[i] if self.slots is not None else None

    def add_padded(self, batch: list[int], out: M3Output) -> None:
        """The outputs of texts `batch` from a padded forward (row `row` is text `batch[row]`)."""
        if self.dense is not None and out.dense is not None:
            self.dense[batch] = out.dense.float().cpu().numpy()
        if self.sparse is not None and out.token_weights is not None:
            weights = out.token_weights.float().cpu().numpy()
            for row, i in enumerate(batch):
                self.sparse[i] = self._sparse_vector(i, weights[row, : len(self.ids[i])])
        if self.colbert is not None and out.colbert is not None:
            vectors = out.colbert.float().cpu().numpy()
            for row, i in enumerate(batch):
                self._add_colbert(i, _without_cls_slots(vectors[row, : len(self.ids[i]) - 1], self._slots(i)))

    def add_packed(self, batch: list[int], out: PackedOutput) -> None:
        """The outputs of texts `batch` from the packed forward (text `batch[row]` spans `offsets[row:row+2]`)."""
        offsets = out.offsets
        if self.dense is not None and out.dense is not None:
            self.dense[batch] = out.dense.float().cpu().numpy()
        if self.sparse is not None and out.token_weights is not None:
            weights = out.token_weights.float().cpu().numpy()
            for row, i in enumerate(batch):
                self.sparse[i] = self._sparse_vector(i, weights[offsets[row] : offsets[row + 1]])
        if self.colbert is not None and out.colbert is not None:
            vectors = out.colbert.float().cpu().numpy()
            for row, i in enumerate(batch):
                # the ColBERT rows skip each text's first token, so text `row` starts `row` rows earlier
                rows = vectors[offsets[row] - row : offsets[row + 1] - row - 1]
                self._add_colbert(i, _without_cls_slots(rows, self._slots(i)))

    def _sparse_vector(self, i: int, weights: np.ndarray) -> SparseVector:
        ids = np.asarray(self.ids[i])
        if self.own_from is not None:
            ids, weights = ids[self.own_from[i] :], weights[self.own_from[i] :]
        if self.sparse_keys is not None:
            ids, weights = self.sparse_keys(ids, weights)
        return SparseVector.from_token_weights(ids, weights, self.skip_ids)

    def _add_colbert(self, i: int, rows: np.ndarray) -> None:
        if self.coder is not None:
            self.codes[i] = self.coder(rows)
        elif self.colbert is not None:
            self.colbert[i] = rows

    def sparse_vectors(self) -> list[SparseVector] | None:
        """One `SparseVector` per text (empty where no batch gave one), or None when not asked for."""
        if self.sparse is None:
            return None
        return [s if s is not None else SparseVector.empty() for s in self.sparse]

    def colbert_rows(self) -> list[np.ndarray] | None:
        """The ColBERT rows of every text, or None when not asked for (or coded instead)."""
        if self.colbert is None or self.coder is not None:
            return None
        return [c for c in self.colbert if c is not None]

    def colbert_codes(self) -> list[tuple[np.ndarray, np.ndarray | None]] | None:
        """The coded ColBERT rows of every text, or None without a `colbert_coder`."""
        if self.coder is None:
            return None
        return [c for c in self.codes if c is not None]
