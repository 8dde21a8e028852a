"""`RetroMAECollator`: texts → encoder MLM inputs and enhanced-decoding inputs (as FlagEmbedding's RetroMAE, but whole-word masking fixed: docs/differences.md Q16).

Per batch:
- encoder: whole words masked at `encoder_mlm_probability` (default 0.3), then 80/10/10 corruption;
- decoder: the uncorrupted ids (content stream), every real non-special token a target, and a
  position-specific attention matrix `[B, L, L]` (True = may attend): row i hides its own random
  `decoder_mlm_probability` (default 0.5) of the words, never sees position i itself, always sees the CLS
  slot (position 0) and the special tokens, never sees padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    def word_ids(self, texts: list[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Tokenise and return `(encoding, word_ids [B, L])` with −1 for special tokens and padding.

        Each token of a script written without spaces (Chinese, Japanese, Thai, …) is its own word.
        """
        encoding = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_seq_length,
            padding="longest",
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        input_ids = encoding["input_ids"]
        special = encoding["special_tokens_mask"].bool() | (encoding["attention_mask"] == 0)
        rows = []
        for i in range(input_ids.shape[0]):
            try:
                ids = encoding.word_ids(i)
            except (ValueError, AttributeError):  # no fast tokenizer: read words from the token strings
                tokens = self.tokenizer.convert_ids_to_tokens(input_ids[i].tolist())
                rows.append(word_ids_from_tokens(tokens, special[i].tolist()))
                continue
            rows.append([-1 if w is None or s else w for w, s in zip(ids, special[i].tolist(), strict=True)])
        word_ids = split_unspaced_words(torch.tensor(rows, dtype=torch.long), self._unspaced[input_ids])
        return {"input_ids": input_ids, "attention_mask": encoding["attention_mask"]}, word_ids

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
