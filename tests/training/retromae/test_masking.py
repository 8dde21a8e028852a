"""Whole-word masking and 80/10/10 corruption: counts, ratios and invariants."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec.training.retromae.masking import corrupt_for_mlm, whole_word_mask, word_ids_from_tokens


def random_word_rows(rows: int, length: int, seed: int) -> torch.Tensor:
    """Rows of [special, words of 1–4 tokens …, special, padding …] as word-id tensors."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.full((rows, length), -1, dtype=torch.long)
    for r in range(rows):
        real = int(torch.randint(2, length + 1, (1,), generator=generator))
        position, word = 1, 0
        while position < real - 1:
            size = int(torch.randint(1, 5, (1,), generator=generator))
            end = min(position + size, real - 1)
            out[r, position:end] = word
            position, word = end, word + 1
    return out


def is_whole_word(word_ids: torch.Tensor, mask: torch.Tensor) -> bool:
    for r in range(word_ids.shape[0]):
        for w in word_ids[r].unique().tolist():
            if w < 0:
                continue
            chosen = mask[r][word_ids[r] == w]
            if bool(chosen.any()) != bool(chosen.all()):
                return False
    return True


@given(
    seed=st.integers(0, 10_000),
    probability=st.floats(0.05, 0.95),
    length=st.integers(3, 40),
)
@settings(max_examples=60, deadline=None)
def test_whole_words_only_and_never_special(seed: int, probability: float, length: int) -> None:
    word_ids = random_word_rows(8, length, seed)
    mask = whole_word_mask(word_ids, probability, torch.Generator().manual_seed(seed))
    assert not bool(mask[word_ids < 0].any())
    assert is_whole_word(word_ids, mask)
    counts = (word_ids >= 0).sum(1)
    targets = torch.clamp(torch.round(counts.double() * probability).long(), min=1) * (counts > 0)
    assert bool((mask.sum(1) <= targets).all())  # never over the budget


def test_mask_ratio_matches_probability_on_many_rows() -> None:
    word_ids = random_word_rows(4000, 64, seed=1)
    maskable = (word_ids >= 0).sum()
    for probability in (0.15, 0.3, 0.5, 0.7):
        mask = whole_word_mask(word_ids, probability, torch.Generator().manual_seed(2))
        ratio = float(mask.sum() / maskable)
        # words of up to 4 tokens may not fit the last gap: the ratio sits at or slightly below p
        assert probability - 0.03 < ratio <= probability + 0.005, (probability, ratio)


def test_single_token_words_hit_the_exact_count() -> None:
    word_ids = torch.arange(20).repeat(50, 1)
    mask = whole_word_mask(word_ids, 0.3, torch.Generator().manual_seed(0))
    assert bool((mask.sum(1) == 6).all())
    # different rows choose different words
    assert len({tuple(row.tolist()) for row in mask}) > 40


def test_every_nonempty_row_masks_at_least_one_token() -> None:
    word_ids = torch.tensor([[-1, 0, -1, -1], [-1, -1, -1, -1]])
    mask = whole_word_mask(word_ids, 0.15)
    assert mask.tolist() == [[False, True, False, False], [False] * 4]


def test_corruption_is_80_10_10() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (200, 100), generator=generator)
    mask = torch.rand(ids.shape, generator=generator) < 0.5
    pool = torch.arange(5, 999)
    corrupted, labels = corrupt_for_mlm(ids, mask, mask_token_id=3, replacement_ids=pool, generator=generator)
    assert bool((labels[~mask] == -100).all()) and bool((labels[mask] == ids[mask]).all())
    assert bool((corrupted[~mask] == ids[~mask]).all())
    chosen = int(mask.sum())
    as_mask = int((corrupted[mask] == 3).sum()) / chosen
    as_random = int(((corrupted[mask] >= 5) & (corrupted[mask] < 999)).sum()) / chosen
    unchanged = int((corrupted[mask] == ids[mask]).sum()) / chosen
    assert abs(as_mask - 0.8) < 0.01 and abs(as_random - 0.1) < 0.01 and abs(unchanged - 0.1) < 0.01


def test_word_ids_from_wordpiece_tokens() -> None:
    tokens = ["[CLS]", "un", "##believ", "##able", ",", "the", "token", "##izer", "[SEP]", "[PAD]"]
    special = [True, False, False, False, False, False, False, False, True, True]
    assert word_ids_from_tokens(tokens, special) == [-1, 0, 0, 0, 1, 2, 3, 3, -1, -1]


def test_word_ids_from_sentencepiece_tokens() -> None:
    tokens = ["<s>", "▁Un", "beli", "eva", "bly", ",", "▁the", "▁", ".", "</s>"]
    special = [True] + [False] * 8 + [True]
    assert word_ids_from_tokens(tokens, special) == [-1, 0, 0, 0, 0, 0, 1, 2, 2, -1]
