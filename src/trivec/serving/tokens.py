"""Token counts for limit checks and usage, from a private copy of the model's tokenizer.

A fast tokenizer keeps its truncation setting on the shared Rust object and each call rewrites it; counting on
the event loop with the encoder's own tokenizer while the encoder thread tokenises would race on that
setting. The copy here is set once to never truncate or pad and is only read afterwards, so any thread can
count with it at the same time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

LONG_TEXT = 2000  # characters from which a single text is counted with the GIL released


class TokenCounter:
    """Tokens of each text with special tokens, untruncated — what the per-text limit is checked against."""

    def __init__(self, tokenizer: Any) -> None:
        private = copy.deepcopy(tokenizer)
        backend = getattr(private, "backend_tokenizer", None)
        if backend is not None:
            backend.no_truncation()
            backend.no_padding()
        self._backend = backend
        self._tokenizer = private

    def __call__(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._backend is not None:
            # encode_batch hands even one text to the rayon pool: a cross-thread round trip, worth it only for
            # a long text — `encode` holds the GIL (and with it the event loop) while it works, `encode_batch`
            # lets it go
            if len(texts) == 1 and len(texts[0]) < LONG_TEXT:
                return [len(self._backend.encode(texts[0], add_special_tokens=True).ids)]
            return [len(e.ids) for e in self._backend.encode_batch(list(texts), add_special_tokens=True)]
        encoded = self._tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]
