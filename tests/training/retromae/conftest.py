"""Real tokenizers and real texts for the RetroMAE tests."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.conftest import DATA, XLMR_TOKENIZER
from trivec.models import minilm_path
from trivec.training.retromae.data import read_corpus_texts

FIXTURE_CORPUS = DATA / "cranfield" / "corpus.jsonl"


@pytest.fixture(scope="session")
def bert_tokenizer() -> PreTrainedTokenizerBase:
    """all-MiniLM-L6-v2's WordPiece tokenizer."""
    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="session")
def xlmr_tokenizer() -> PreTrainedTokenizerBase:
    """The real 250,002-piece XLM-R SentencePiece tokenizer."""
    return AutoTokenizer.from_pretrained(XLMR_TOKENIZER)


@pytest.fixture(scope="session")
def english_texts() -> list[str]:
    return read_corpus_texts(FIXTURE_CORPUS)[:300]


@pytest.fixture(scope="session")
def multilingual_texts(english_texts: list[str]) -> list[str]:
    """English abstracts plus Tatoeba sentences in many scripts (Arabic, Chinese, Russian, …)."""
    texts = list(english_texts[:100])
    with (DATA / "tatoeba-bitext" / "pairs.jsonl").open(encoding="utf-8") as handle:
        for line in islice(handle, 0, 33_000, 110):
            texts.append(json.loads(line)["sentence1"])
    return texts
