"""The RetroMAE collator on real tokenizers (WordPiece and SentencePiece) and real text."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from trivec.errors import InputError
from trivec.training.retromae.collator import RetroMAECollator
from trivec.training.retromae.masking import word_ids_from_tokens

TOKENIZERS = ["bert_tokenizer", "xlmr_tokenizer"]
TEXTS = {"bert_tokenizer": "english_texts", "xlmr_tokenizer": "multilingual_texts"}


@pytest.fixture(params=TOKENIZERS)
def setup(request: pytest.FixtureRequest) -> tuple[PreTrainedTokenizerBase, list[str]]:
    return request.getfixturevalue(request.param), request.getfixturevalue(TEXTS[request.param])


def collate_all(
    collator: RetroMAECollator, texts: list[str], batch: int = 50
) -> list[dict[str, torch.Tensor]]:
    return [collator(texts[i : i + batch]) for i in range(0, len(texts), batch)]


def words_of(collator: RetroMAECollator, texts: list[str]) -> torch.Tensor:
    return collator.word_ids(texts)[1]


def test_encoder_mask_ratio_whole_words_and_80_10_10(
    setup: tuple[PreTrainedTokenizerBase, list[str]],
) -> None:
    tokenizer, texts = setup
    collator = RetroMAECollator(tokenizer, max_seq_length=128, generator=torch.Generator().manual_seed(0))
    masked = maskable = as_mask = unchanged = 0
    special_ids = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 50):
        chunk = texts[start : start + 50]
        word_ids = words_of(collator, chunk)
        batch = collator(chunk)
        labels, ids = batch["encoder_labels"], batch["encoder_input_ids"]
        chosen = labels != -100
        # special tokens and padding are never chosen; labels hold the original ids
        assert not bool(chosen[word_ids < 0].any())
        original = torch.where(chosen, labels, ids)
        assert not any(int(t) in special_ids for t in original[chosen])
        # whole words: every word is fully chosen or not at all
        for r in range(word_ids.shape[0]):
            for w in word_ids[r][word_ids[r] >= 0].unique():
                in_word = chosen[r][word_ids[r] == w]
                assert bool(in_word.all()) or not bool(in_word.any())
        masked += int(chosen.sum())
        maskable += int((word_ids >= 0).sum())
        as_mask += int((ids[chosen] == tokenizer.mask_token_id).sum())
        unchanged += int((ids[chosen] == labels[chosen]).sum())
    assert 0.27 < masked / maskable <= 0.305, masked / maskable
    assert abs(as_mask / masked - 0.8) < 0.03
    assert abs(unchanged / masked - 0.1) < 0.03


def test_whole_word_groups_follow_the_tokenizer(setup: tuple[PreTrainedTokenizerBase, list[str]]) -> None:
    """WordPiece: `##` pieces join the previous token; SentencePiece: only `▁` starts a word (except in
    unspaced scripts, where every token is a word)."""
    tokenizer, texts = setup
    collator = RetroMAECollator(tokenizer, max_seq_length=128)
    encoding, word_ids = collator.word_ids(texts[:120])
    sentencepiece = "▁" in "".join(tokenizer.convert_ids_to_tokens(encoding["input_ids"][0].tolist()))
    checked = 0
    for r in range(word_ids.shape[0]):
        tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][r].tolist())
        for t in range(2, len(tokens)):
            if word_ids[r, t] < 0 or word_ids[r, t - 1] < 0:
                continue
            same_word = bool(word_ids[r, t] == word_ids[r, t - 1])
            if sentencepiece and collator._unspaced[encoding["input_ids"][r, t]]:
                assert not same_word
                continue
            continues = not tokens[t].startswith("▁") if sentencepiece else tokens[t].startswith("##")
            if continues != same_word:
                # WordPiece words also end at punctuation; SentencePiece words never join across '▁'
                assert not same_word and not sentencepiece, (tokens[t - 1], tokens[t])
            checked += 1
    assert checked > 1000


def test_string_fallback_matches_fast_word_ids(bert_tokenizer: PreTrainedTokenizerBase) -> None:
    """The token-string fallback (for tokenizers without `word_ids`) groups WordPiece tokens the same way
    as the fast tokenizer does, apart from punctuation (a word of its own there, a continuation-free piece
    here, which is also a word of its own)."""
    texts = ["Unbelievably, the tokenizer's word-ids work: don't they?", "aerodynamic heating of wings"]
    collator = RetroMAECollator(bert_tokenizer)
    encoding, fast = collator.word_ids(texts)
    for r in range(len(texts)):
        tokens = bert_tokenizer.convert_ids_to_tokens(encoding["input_ids"][r].tolist())
        special = (fast[r] < 0).tolist()
        assert word_ids_from_tokens(tokens, special) == fast[r].tolist()


def test_decoder_attention_properties(setup: tuple[PreTrainedTokenizerBase, list[str]]) -> None:
    tokenizer, texts = setup
    collator = RetroMAECollator(tokenizer, max_seq_length=96, generator=torch.Generator().manual_seed(1))
    visible_other = total_other = 0
    for start in range(0, 200, 50):
        chunk = texts[start : start + 50]
        word_ids = words_of(collator, chunk)
        batch = collator(chunk)
        attention, real = batch["decoder_attention_mask"], batch["encoder_attention_mask"].bool()
        labels = batch["decoder_labels"]
        targets = labels != -100
        # labels: every real non-special token, with its original id
        assert torch.equal(targets, word_ids >= 0)
        assert torch.equal(labels[targets], batch["decoder_input_ids"][targets])
        length = attention.shape[1]
        eye = torch.eye(length, dtype=torch.bool).expand_as(attention)
        rows = targets.unsqueeze(2).expand_as(attention)
        assert not bool(attention[eye & rows].any())  # a target never sees itself
        assert bool(attention[:, :, 0].all())  # the CLS slot is always visible
        assert not bool((attention & ~real.unsqueeze(1)).any())  # padding is never visible
        # special tokens (other than the diagonal) are always visible
        special_cols = (word_ids < 0) & real
        assert bool(attention[(special_cols.unsqueeze(1) & ~eye).expand_as(attention) & rows].all())
        # among the other real tokens a row sees about half, per whole word
        candidates = (word_ids >= 0).unsqueeze(1) & rows & ~eye
        visible_other += int(attention[candidates].sum())
        total_other += int(candidates.sum())
        for b in range(0, 50, 10):
            for i in torch.nonzero(targets[b]).flatten()[:5].tolist():
                for w in word_ids[b][word_ids[b] >= 0].unique():
                    cols = (word_ids[b] == w).clone()
                    cols[i] = False
                    seen = attention[b, i][cols]
                    assert bool(seen.all()) or not bool(seen.any())
    ratio = visible_other / total_other
    # 1 − p of the words are visible; the diagonal's own word and long words make it a little higher
    assert 0.48 < ratio < 0.56, ratio


def test_rows_differ_and_masks_are_random(bert_tokenizer: PreTrainedTokenizerBase) -> None:
    collator = RetroMAECollator(bert_tokenizer, generator=torch.Generator().manual_seed(0))
    text = "an experimental study of a wing in a propeller slipstream was made in order to determine"
    first, second = collator([text]), collator([text])
    attention = first["decoder_attention_mask"][0]
    assert len({tuple(row.tolist()) for row in attention}) == attention.shape[0]
    assert not torch.equal(attention, second["decoder_attention_mask"][0])


def test_dict_rows_truncation_and_mlm_only(bert_tokenizer: PreTrainedTokenizerBase) -> None:
    collator = RetroMAECollator(bert_tokenizer, max_seq_length=16, with_decoder=False)
    batch = collator([{"text": "word " * 100}, {"text": "short"}])
    assert set(batch) == {"encoder_input_ids", "encoder_attention_mask", "encoder_labels"}
    assert batch["encoder_input_ids"].shape == (2, 16)


def test_bad_settings_and_rows_are_named(bert_tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(InputError, match="encoder_mlm_probability"):
        RetroMAECollator(bert_tokenizer, encoder_mlm_probability=1.5)
    with pytest.raises(InputError, match="max_seq_length"):
        RetroMAECollator(bert_tokenizer, max_seq_length=2)
    with pytest.raises(InputError, match="strings"):
        RetroMAECollator(bert_tokenizer)([{"text": 3}])
