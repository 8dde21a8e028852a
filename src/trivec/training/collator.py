"""`ContrastiveCollator`: a `TrainBatch` → padded token tensors for queries and passages.

Queries and passages are tokenised separately with their own truncation lengths (as FlagEmbedding) and padded on
the right to the longest in the batch (or a multiple of `pad_to_multiple_of`). Teacher scores become a flat
`[B·G]` float tensor. The batch layout is `[q0_pos, q0_neg1 … q0_neg(G−1), q1_pos, …]`.

With a token cache (`use_token_cache`, `trivec.training.token_cache`) the ids of each text come from the
cache, tokenised once per data file and setting, and are only padded here: the same tensors as tokenising.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from trivec.models.casing import fold_capitals
from trivec.training.dataset import ContrastiveDataset, TrainBatch
from trivec.training.token_cache import TokenLookup, build_lookup, pad_rows, tokenizer_fingerprint


class ContrastiveCollator:
    """Tokenise one local batch (the DataLoader's batch size is 1: the dataset already batches)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        query_max_len: int = 32,
        passage_max_len: int = 128,
        pad_to_multiple_of: int | None = None,
        fold_capitals: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.fold_capitals = fold_capitals  # as the model reads text at inference (`trivec.models.casing`)
        self.query_max_len = query_max_len
        self.passage_max_len = passage_max_len
        self.pad_to_multiple_of = pad_to_multiple_of
        self.token_cache: TokenLookup | None = None

    def max_length(self, role: str) -> int:
        return self.query_max_len if role == "query" else self.passage_max_len

    def encode(self, texts: Sequence[str], max_length: int) -> list[list[int]]:
        """Token ids of each text (folded, truncated, unpadded): what the token cache holds."""
        texts = [fold_capitals(text) for text in texts] if self.fold_capitals else list(texts)
        if not texts:
            return []
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """Tokenised and padded: `input_ids` and `attention_mask`, `[len(texts), longest]`."""
        return self.pad([np.asarray(ids, dtype=np.int64) for ids in self.encode(texts, max_length)])

    def features(self, role: str, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded ids and mask of one side of the batch: from the token cache when it holds every text."""
        rows = self.token_cache.rows(role, texts) if self.token_cache is not None else None
        if rows is not None:
            return self.pad(rows)
        return self.tokenize(texts, self.max_length(role))

    def pad(self, rows: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Rows of ids padded as `tokenizer.pad` pads them (its side, its pad id, `pad_to_multiple_of`)."""
        pad_id = self.tokenizer.pad_token_id
        ids, mask = pad_rows(
            rows,
            0 if pad_id is None else int(pad_id),
            multiple=self.pad_to_multiple_of,
            left=self.tokenizer.padding_side == "left",
        )
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    def use_token_cache(self, dataset: ContrastiveDataset, folder: Path | None = None) -> TokenLookup:
        """Load (or build and write) the token cache of each of `dataset`'s files and read ids from it."""
        settings = {
            "tokenizer": tokenizer_fingerprint(self.tokenizer),
            "query_max_len": self.query_max_len,
            "passage_max_len": self.passage_max_len,
            "fold_capitals": self.fold_capitals,
        }
        lookup = build_lookup(
            [(item.source.path, dataset.file_texts(index)) for index, item in enumerate(dataset.files)],
            settings,
            lambda role, texts: {"ids": self.encode(cast(list[str], texts), self.max_length(role))},
            vocab_size=len(self.tokenizer),
            folder=folder,
        )
        self.token_cache = lookup
        return lookup

    def __call__(self, items: Sequence[TrainBatch] | TrainBatch) -> dict[str, Any]:
        batch = items if isinstance(items, TrainBatch) else _single(items)
        features: dict[str, Any] = {
            "query": self.features("query", batch.queries),
            "passage": self.features("passage", batch.passages),
            "in_batch_negatives": batch.in_batch_negatives,
        }
        if batch.teacher_scores is not None:
            features["teacher_scores"] = torch.tensor(batch.teacher_scores, dtype=torch.float32)
        return features


def _single(items: Sequence[TrainBatch]) -> TrainBatch:
    if len(items) != 1:
        raise ValueError(f"ContrastiveCollator expects one TrainBatch per step, got {len(items)}")
    return items[0]
