"""`ContrastiveCollator`: a `TrainBatch` → padded token tensors for queries and passages.

Queries and passages are tokenised separately with their own truncation lengths (as FlagEmbedding) and padded on
the right to the longest in the batch (or a multiple of `pad_to_multiple_of`). Teacher scores become a flat
`[B·G]` float tensor. The batch layout is `[q0_pos, q0_neg1 … q0_neg(G−1), q1_pos, …]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from trivec.models.casing import fold_capitals
from trivec.training.dataset import TrainBatch


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

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        if self.fold_capitals:
            texts = [fold_capitals(text) for text in texts]
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=max_length, return_token_type_ids=False
        )
        encoded = self.tokenizer.pad(
            encoded, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def __call__(self, items: Sequence[TrainBatch] | TrainBatch) -> dict[str, Any]:
        batch = items if isinstance(items, TrainBatch) else _single(items)
        features: dict[str, Any] = {
            "query": self.tokenize(batch.queries, self.query_max_len),
            "passage": self.tokenize(batch.passages, self.passage_max_len),
            "in_batch_negatives": batch.in_batch_negatives,
        }
        if batch.teacher_scores is not None:
            features["teacher_scores"] = torch.tensor(batch.teacher_scores, dtype=torch.float32)
        return features


def _single(items: Sequence[TrainBatch]) -> TrainBatch:
    if len(items) != 1:
        raise ValueError(f"ContrastiveCollator expects one TrainBatch per step, got {len(items)}")
    return items[0]
