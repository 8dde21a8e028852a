"""RetroMAE's token cache: the same batches as tokenising (masks still drawn per batch), reused when current."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerBase

from tests.training.conftest import write_jsonl
from trivec.errors import InputError
from trivec.training import token_cache
from trivec.training.retromae.arguments import RetroMAEArguments
from trivec.training.retromae.collator import RetroMAECollator
from trivec.training.retromae.data import TextCorpus
from trivec.training.retromae.masking import split_unspaced_words, word_ids_from_tokens

TOKENIZERS = ["bert_tokenizer", "xlmr_tokenizer"]
TEXTS = {"bert_tokenizer": "english_texts", "xlmr_tokenizer": "multilingual_texts"}


@pytest.fixture(params=TOKENIZERS)
def setup(request: pytest.FixtureRequest) -> tuple[PreTrainedTokenizerBase, list[str]]:
    texts: list[str] = request.getfixturevalue(TEXTS[request.param])
    stress = [
        "SUPERSONIC FLOW over a Blunt Nose",  # capitals
        "naïve café résumé — Zürich",  # accents
        "北京大学的研究人员发现了新的超导材料",  # unspaced script: a word per token
        " ".join(["boundary layer"] * 200),  # cut at max_seq_length
        texts[0],  # a duplicate: cached once, looked up for both
    ]
    return request.getfixturevalue(request.param), stress + texts[:60]


def reference_word_ids(
    collator: RetroMAECollator, texts: list[str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """How the collator tokenised before the cache: one padded tokenizer call, its word ids."""
    encoding = collator.tokenizer(
        texts,
        truncation=True,
        max_length=collator.max_seq_length,
        padding="longest",
        pad_to_multiple_of=collator.pad_to_multiple_of,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    input_ids = encoding["input_ids"]
    special = encoding["special_tokens_mask"].bool() | (encoding["attention_mask"] == 0)
    rows = []
    for i in range(input_ids.shape[0]):
        try:
            ids = encoding.word_ids(i)
        except (ValueError, AttributeError):
            tokens = collator.tokenizer.convert_ids_to_tokens(input_ids[i].tolist())
            rows.append(word_ids_from_tokens(tokens, special[i].tolist()))
            continue
        rows.append([-1 if w is None or s else w for w, s in zip(ids, special[i].tolist(), strict=True)])
    word_ids = split_unspaced_words(torch.tensor(rows, dtype=torch.long), collator._unspaced[input_ids])
    return {"input_ids": input_ids, "attention_mask": encoding["attention_mask"]}, word_ids


def corpus_file(tmp_path: Path, texts: list[str]) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in texts])


@pytest.mark.parametrize("multiple", [None, 8])
def test_cached_batches_equal_tokenised_batches(
    tmp_path: Path, setup: tuple[PreTrainedTokenizerBase, list[str]], multiple: int | None
) -> None:
    tokenizer, texts = setup
    corpus = TextCorpus([corpus_file(tmp_path, texts)])
    texts = corpus.texts  # as read (stripped)

    def collator() -> RetroMAECollator:
        return RetroMAECollator(
            tokenizer,
            max_seq_length=64,
            pad_to_multiple_of=multiple,
            generator=torch.Generator().manual_seed(3),
        )

    cached, plain = collator(), collator()
    lookup = cached.use_token_cache(corpus.files())
    assert len(lookup) == len(set(texts))
    for start in range(0, len(texts), 16):
        chunk = texts[start : start + 16]
        expected, expected_words = reference_word_ids(plain, chunk)
        for source in (cached, plain):
            encoding, words = source.word_ids(chunk)
            assert torch.equal(words, expected_words)
            for name in ("input_ids", "attention_mask"):
                assert torch.equal(encoding[name], expected[name]), name
        with_cache, without = cached(chunk), plain(chunk)  # the same generator state: the same masks
        assert with_cache.keys() == without.keys()
        for name in without:
            assert torch.equal(with_cache[name], without[name]), name
    assert not torch.equal(cached(texts[:16])["encoder_input_ids"], cached(texts[:16])["encoder_input_ids"])


def test_current_cache_is_reused_and_a_changed_key_rebuilds(
    tmp_path: Path, xlmr_tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["the first text", "the second text", "the first text"]
    path = corpus_file(tmp_path, texts)
    calls: list[int] = []
    original = RetroMAECollator.encode

    def counting(self: RetroMAECollator, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        calls.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(RetroMAECollator, "encode", counting)
    RetroMAECollator(xlmr_tokenizer, max_seq_length=16).use_token_cache(TextCorpus([path]).files())
    assert calls == [2]  # the distinct texts, once
    calls.clear()
    collator = RetroMAECollator(xlmr_tokenizer, max_seq_length=16)
    collator.use_token_cache(TextCorpus([path]).files())
    collator(texts)
    assert calls == []  # read back, and every batch served from it
    RetroMAECollator(xlmr_tokenizer, max_seq_length=12).use_token_cache(TextCorpus([path]).files())
    assert calls == [2]
    files = sorted((tmp_path / token_cache.CACHE_DIR).glob("corpus.jsonl.*.safetensors"))
    assert len(files) == 2
    calls.clear()
    collator(["a text the cache lacks"])  # tokenised, not refused
    assert calls == [1]


def test_token_cache_setting() -> None:
    assert RetroMAEArguments().token_cache is True
    args = RetroMAEArguments(model="m", corpus=[__file__])
    args.token_cache = "sometimes"  # type: ignore[assignment]
    with pytest.raises(InputError, match="token_cache must be true or false"):
        args.validate()
