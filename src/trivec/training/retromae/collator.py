"""`RetroMAECollator`: texts → encoder MLM inputs and enhanced-decoding inputs (as FlagEmbedding's RetroMAE, but whole-word masking fixed: docs/differences.md Q16).

Per batch:
- encoder: whole words masked at `encoder_mlm_probability` (default 0.3), then 80/10/10 corruption;
- decoder: the uncorrupted ids (content stream), every real non-special token a target, and a
  position-specific attention matrix `[B, L, L]` (True = may attend): row i hides its own random
  `decoder_mlm_probability` (default 0.5) of the words, never sees position i itself, always sees the CLS
  slot (position 0) and the special tokens, never sees padding.

Each text's ids and word ids are computed once per text (unpadded) and padded per batch; with a token cache
(`use_token_cache`, `trivec.training.token_cache`) they come from the corpus file's cache instead of the
tokenizer. Only the tokenisation is cached: the masks are drawn anew for every batch, as without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from trivec.errors import InputError
from trivec.training.retromae.arguments import check_masking
from trivec.training.retromae.masking import (
    corrupt_for_mlm,
    split_unspaced_words,
    unspaced_token_table,
    whole_word_mask,
    word_ids_from_tokens,
)
from trivec.training.token_cache import TokenLookup, build_lookup, pad_rows, tokenizer_fingerprint

CACHE_ROLE = "text"  # the token cache's role for corpus texts: ids and word ids
CACHE_COLUMNS = ("ids", "words")


@dataclass
class RetroMAECollator:
    """Tokenise a list of texts (or `{"text": ...}` rows) and build the RetroMAE batch."""

    tokenizer: PreTrainedTokenizerBase
    max_seq_length: int = 512
    encoder_mlm_probability: float = 0.3
    decoder_mlm_probability: float = 0.5
    pad_to_multiple_of: int | None = None
    with_decoder: bool = True
    generator: torch.Generator | None = None
    token_cache: TokenLookup | None = field(default=None, repr=False)
    _replacement_ids: torch.Tensor = field(init=False, repr=False)
    _unspaced: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_masking(self.max_seq_length, self.encoder_mlm_probability, self.decoder_mlm_probability)
        if self.tokenizer.mask_token_id is None:
            raise InputError(f"tokenizer {type(self.tokenizer).__name__} has no mask token; MLM needs one")
        if self.tokenizer.pad_token_id is None:
            raise InputError(f"tokenizer {type(self.tokenizer).__name__} has no padding token")
        vocabulary = torch.arange(len(self.tokenizer))
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
        self._replacement_ids = vocabulary[~torch.isin(vocabulary, special)]
        self._unspaced = unspaced_token_table(self.tokenizer.convert_ids_to_tokens(vocabulary.tolist()))

    # ------------------------------------------------------------------ tokenisation
    def encode(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and word ids (−1 for special tokens) of each text, truncated and unpadded: what the
        token cache holds. Words come from the fast tokenizer's `word_ids`, else from the token strings."""
        if not texts:
            return [], []
        encoding = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_seq_length,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids_rows: list[list[int]] = []
        word_rows: list[list[int]] = []
        for i, row in enumerate(encoding["input_ids"]):
            special = [bool(s) for s in encoding["special_tokens_mask"][i]]
            try:
                words = encoding.word_ids(i)
            except (ValueError, AttributeError):  # no fast tokenizer: read words from the token strings
                word_rows.append(
                    word_ids_from_tokens(self.tokenizer.convert_ids_to_tokens(list(row)), special)
                )
            else:
                word_rows.append([-1 if w is None or s else w for w, s in zip(words, special, strict=True)])
            ids_rows.append(list(row))
        return ids_rows, word_rows

    def word_ids(self, texts: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Tokenise (or read from the token cache) and return `(encoding, word_ids [B, L])` with −1 for
        special tokens and padding, padded as the tokenizer pads.

        Each token of a script written without spaces (Chinese, Japanese, Thai, …) is its own word.
        """
        cached = self._cached(texts)
        ids_rows, word_rows = cached if cached is not None else self.encode(texts)
        left = self.tokenizer.padding_side == "left"
        ids, mask = pad_rows(
            ids_rows, int(self.tokenizer.pad_token_id), multiple=self.pad_to_multiple_of, left=left
        )
        words, _ = pad_rows(word_rows, -1, multiple=self.pad_to_multiple_of, left=left)
        input_ids = torch.from_numpy(ids)
        word_ids = split_unspaced_words(torch.from_numpy(words), self._unspaced[input_ids])
        return {"input_ids": input_ids, "attention_mask": torch.from_numpy(mask)}, word_ids

    def _cached(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
        """The cached ids and word ids of every text, or None (no cache, or a text it lacks)."""
        if self.token_cache is None:
            return None
        ids = self.token_cache.rows(CACHE_ROLE, texts)
        words = self.token_cache.rows(CACHE_ROLE, texts, "words") if ids is not None else None
        return None if ids is None or words is None else (ids, words)

    def use_token_cache(
        self, files: Sequence[tuple[str | os.PathLike[str], Sequence[str]]], folder: Path | None = None
    ) -> TokenLookup:
        """Load (or build and write) the token cache of each corpus file (`(path, its texts)`) and read each
        text's ids and word ids from it from now on."""
        settings = {
            "trainer": "retromae",
            "tokenizer": tokenizer_fingerprint(self.tokenizer),
            "max_seq_length": self.max_seq_length,
        }
        lookup = build_lookup(
            [(path, {CACHE_ROLE: list(dict.fromkeys(texts))}) for path, texts in files],
            settings,
            self._cache_rows,
            columns=CACHE_COLUMNS,
            vocab_size=len(self.tokenizer),
            folder=folder,
        )
        self.token_cache = lookup
        return lookup

    def _cache_rows(self, role: str, texts: list[Any]) -> dict[str, list[list[int]]]:
        ids, words = self.encode(texts)
        return {"ids": ids, "words": words}

    # ------------------------------------------------------------------ decoder attention
    def decoder_attention(self, word_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Position-specific attention `[B, L, L]` (True = row may attend to column)."""
        batch, length = word_ids.shape
        real = attention_mask.bool()
        rows = word_ids.unsqueeze(1).expand(batch, length, length).clone()
        rows[~real] = -1  # padding rows need no random draw
        hidden = whole_word_mask(
            rows.reshape(batch * length, length), self.decoder_mlm_probability, self.generator
        ).view(batch, length, length)
        visible = real.unsqueeze(1) & ~hidden
        eye = torch.eye(length, dtype=torch.bool).unsqueeze(0)
        visible = visible & ~eye
        visible[:, :, 0] = True  # the CLS slot (the sentence embedding) is always visible
        return visible

    # ------------------------------------------------------------------ call
    def __call__(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        texts = [e["text"] if isinstance(e, dict) else e for e in examples]
        for text in texts:
            if not isinstance(text, str):
                raise InputError(
                    f"RetroMAE examples must be strings or {{'text': str}}, got {type(text).__name__}"
                )
        encoding, word_ids = self.word_ids(texts)
        input_ids, attention_mask = encoding["input_ids"], encoding["attention_mask"]
        encoder_mask = whole_word_mask(word_ids, self.encoder_mlm_probability, self.generator)
        encoder_ids, encoder_labels = corrupt_for_mlm(
            input_ids, encoder_mask, int(self.tokenizer.mask_token_id), self._replacement_ids, self.generator
        )
        batch = {
            "encoder_input_ids": encoder_ids,
            "encoder_attention_mask": attention_mask,
            "encoder_labels": encoder_labels,
        }
        if self.with_decoder:
            batch["decoder_input_ids"] = input_ids
            batch["decoder_attention_mask"] = self.decoder_attention(word_ids, attention_mask)
            batch["decoder_labels"] = input_ids.masked_fill(word_ids < 0, -100)
        return batch
