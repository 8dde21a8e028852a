"""Whole-word masking for any tokenizer, vectorised over many rows at once.

Words come from the fast tokenizer's `word_ids()` (WordPiece, SentencePiece and byte-level BPE alike), or,
for a tokenizer without it, from the token strings (`##` continues a word; `▁`/`Ġ` starts one). Special
tokens and padding get word id −1 and are never masked. This replaces the reference collator's BERT-only
`##` rule and its transformers-4.x private helpers (docs/differences.md Q16).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from trivec.errors import InputError

WORDPIECE_CONTINUATION = "##"
WORD_START_MARKERS = ("▁", "Ġ")  # SentencePiece, byte-level BPE
# Scripts written without spaces (CJK, kana, Thai, Lao, Khmer, Myanmar, Tibetan): a whitespace "word" there
# can be a whole sentence, so each of their tokens counts as a word of its own (as BERT does for CJK).
UNSPACED_SCRIPTS = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3000-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]"
)


def unspaced_token_table(tokens: Sequence[str]) -> torch.Tensor:
    """Bool per vocabulary id: the token holds a character of a script written without spaces."""
    return torch.tensor([bool(UNSPACED_SCRIPTS.search(t or "")) for t in tokens], dtype=torch.bool)


def split_unspaced_words(word_ids: torch.Tensor, unspaced: torch.Tensor) -> torch.Tensor:
    """Renumber `word_ids [B, L]` so that every `unspaced` token is a word by itself (−1 stays −1)."""
    maskable = word_ids >= 0
    previous_word = torch.nn.functional.pad(word_ids[:, :-1], (1, 0), value=-1)
    previous_unspaced = torch.nn.functional.pad(unspaced[:, :-1], (1, 0), value=False)
    starts = maskable & ((word_ids != previous_word) | unspaced | previous_unspaced)
    renumbered = torch.cumsum(starts.long(), dim=1) - 1
    return torch.where(maskable, renumbered, torch.full_like(word_ids, -1))


def word_ids_from_tokens(tokens: Sequence[str], special: Sequence[bool]) -> list[int]:
    """Word index of each token from the token strings alone (−1 for special tokens).

    WordPiece marks continuations (`##ing`); SentencePiece / byte-level BPE mark word starts (`▁the`,
    `Ġthe`). Which convention applies is read from the tokens themselves.
    """
    markers_start = any(
        t.startswith(WORD_START_MARKERS) for t, s in zip(tokens, special, strict=True) if not s
    )
    word = -1
    out: list[int] = []
    previous_special = True
    for token, is_special in zip(tokens, special, strict=True):
        if is_special:
            out.append(-1)
            previous_special = True
            continue
        if markers_start:
            starts = token.startswith(WORD_START_MARKERS) or previous_special
        else:
            starts = not token.startswith(WORDPIECE_CONTINUATION) or previous_special
        if starts:
            word += 1
        out.append(word)
        previous_special = False
    return out


def whole_word_mask(
    word_ids: torch.Tensor, probability: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Choose whole words to mask, independently in each row.

    word_ids: `[N, L]` long, the word index of each position (−1 = never masked: special tokens, padding).
    Per row, `n = max(1, round(p · #maskable))` tokens are targeted; words are visited in random order and
    taken while they fit (a word that would overshoot is skipped, a shorter one later may still fit), as the
    reference `DataCollatorForWholeWordMask` does. Returns a bool `[N, L]`.
    """
    if not 0.0 < probability < 1.0:
        raise InputError(f"masking probability must lie in (0, 1), got {probability}")
    if word_ids.dim() != 2:
        raise InputError(f"word_ids must be [rows, length], got shape {tuple(word_ids.shape)}")
    rows, _ = word_ids.shape
    maskable = word_ids >= 0
    if rows == 0 or not bool(maskable.any()):
        return torch.zeros_like(word_ids, dtype=torch.bool)
    n_words = int(word_ids.max()) + 1
    index = word_ids.clamp(min=0)
    lengths = torch.zeros(rows, n_words, dtype=torch.long, device=word_ids.device)
    lengths.scatter_add_(1, index, maskable.long())
    counts = maskable.sum(dim=1)
    targets = torch.where(
        counts > 0, torch.clamp(torch.round(counts.double() * probability).long(), min=1), counts
    )
    keys = torch.rand(rows, n_words, generator=generator, device=word_ids.device)
    keys = keys.masked_fill(lengths == 0, 2.0)  # absent words sort last
    order = keys.argsort(dim=1)
    sorted_lengths = lengths.gather(1, order)
    taken_sorted = torch.zeros(rows, n_words, dtype=torch.bool, device=word_ids.device)
    total = torch.zeros(rows, dtype=torch.long, device=word_ids.device)
    for k in range(n_words):
        length = sorted_lengths[:, k]
        take = (length > 0) & (total + length <= targets)
        total += length * take
        taken_sorted[:, k] = take
        if bool((total >= targets).all()):
            break
    chosen = torch.zeros_like(taken_sorted).scatter(1, order, taken_sorted)
    return chosen.gather(1, index) & maskable


def corrupt_for_mlm(
    input_ids: torch.Tensor,
    mask: torch.Tensor,
    mask_token_id: int,
    replacement_ids: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 corruption of the chosen positions: `[MASK]`, a random token, or unchanged.

    Returns `(corrupted_ids, labels)` with labels = original id at chosen positions and −100 elsewhere.
    `replacement_ids` is the pool random tokens are drawn from (the vocabulary minus special tokens).
    """
    labels = input_ids.masked_fill(~mask, -100)
    corrupted = input_ids.clone()
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    to_mask = mask & (draw < 0.8)
    to_random = mask & (draw >= 0.8) & (draw < 0.9)
    corrupted[to_mask] = mask_token_id
    picks = torch.randint(
        len(replacement_ids), (int(to_random.sum()),), generator=generator, device=input_ids.device
    )
    corrupted[to_random] = replacement_ids.to(input_ids.device)[picks]
    return corrupted, labels
