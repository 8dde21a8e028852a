"""Sparse (lexical) vectors: token ids with weights, in a stable wire form vector databases accept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trivec.errors import InputError


@dataclass(frozen=True)
class SparseVector:
    """Lexical weights of one text: `indices` (token ids, int32, ascending, unique) and `values` (float32 > 0)."""

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise InputError(
                f"sparse vector needs 1-D indices and values of one length, got {self.indices.shape} and {self.values.shape}"
            )

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @classmethod
    def from_token_weights(
        cls, token_ids: np.ndarray, weights: np.ndarray, skip_ids: frozenset[int]
    ) -> SparseVector:
        """Max weight per token id over the positions of one text; special ids and weights ≤ 0 dropped."""
        token_ids = np.asarray(token_ids, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float32)
        keep = weights > 0
        if skip_ids:
            keep &= ~np.isin(token_ids, np.fromiter(skip_ids, dtype=np.int64))
        ids, vals = token_ids[keep], weights[keep]
        if ids.size == 0:
            return cls.empty()
        order = np.lexsort((vals, ids))
        ids, vals = ids[order], vals[order]
        last_of_run = np.ones(ids.shape[0], dtype=bool)
        last_of_run[:-1] = ids[1:] != ids[:-1]
        return cls(ids[last_of_run].astype(np.int32), vals[last_of_run].astype(np.float32))

    @classmethod
    def empty(cls) -> SparseVector:
        return cls(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))

    @classmethod
    def from_dict(cls, data: Mapping[Any, Any]) -> SparseVector:
        """Parse `{"indices": [...], "values": [...]}` or a `{token_id: weight}` mapping (as FlagEmbedding returns)."""
        if set(data) == {"indices", "values"}:
            indices = np.asarray(data["indices"], dtype=np.int64)
            values = np.asarray(data["values"], dtype=np.float32)
        else:
            try:
                indices = np.asarray([int(k) for k in data], dtype=np.int64)
                values = np.asarray([float(v) for v in data.values()], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InputError(f"sparse vector keys must be token ids: {exc}") from exc
        if indices.shape != values.shape or indices.ndim != 1:
            raise InputError("sparse vector 'indices' and 'values' must be flat lists of the same length")
        if indices.size and (indices.min() < 0 or indices.max() > np.iinfo(np.int32).max):
            raise InputError("sparse vector indices must be non-negative int32 token ids")
        if not np.all(np.isfinite(values)):
            raise InputError("sparse vector values must be finite numbers")
        order = np.argsort(indices, kind="stable")
        indices, values = indices[order], values[order]
        if indices.size > 1 and np.any(indices[1:] == indices[:-1]):
            raise InputError("sparse vector indices must be unique")
        return cls(indices.astype(np.int32), values)

    def to_dict(self) -> dict[str, list[Any]]:
        """The wire form: `{"indices": [int], "values": [float]}`."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    def to_token_weights(self, tokenizer: Any) -> dict[str, float]:
        """Lossless token-string view: each id's own vocabulary piece (`▁a` and `a` stay distinct)."""
        pieces: Sequence[str] = tokenizer.convert_ids_to_tokens(self.indices.tolist())
        return {piece: float(value) for piece, value in zip(pieces, self.values, strict=True)}
