"""Token counting for limits: untruncated, equal to the encoder's counts, and independent of its tokenizer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.serving.conftest import TEXTS
from trivec import Embedder
from trivec.serving.tokens import TokenCounter

LONG = "retrieval " * 400


@pytest.mark.parametrize("name", ["tiny", "minilm"])
def test_counts_equal_the_encoder_and_never_truncate(name: str, request: pytest.FixtureRequest) -> None:
    embedder: Embedder = request.getfixturevalue(name)
    count = TokenCounter(embedder.tokenizer)
    assert count(TEXTS) == [len(ids) for ids in embedder.tokenize(TEXTS)]
    assert count([]) == []
    long_count = count([LONG])[0]
    # MiniLM's tokenizer file truncates at 128 by default: the count does not
    assert long_count == len(embedder.tokenizer(LONG, truncation=False, verbose=False)["input_ids"]) > 128
    # the encoder's own tokenizer still truncates as it did
    assert len(embedder.tokenize([LONG], max_length=16)[0]) == 16
    assert len(embedder.tokenize([LONG])[0]) == min(long_count, embedder.max_length)


def test_counting_from_many_threads_while_the_encoder_tokenises(minilm: Embedder) -> None:
    count = TokenCounter(minilm.tokenizer)
    texts = [LONG[: 50 * (i + 1)] for i in range(16)]
    expected = count(texts)

    def tokenise_truncated(_: int) -> list[int]:
        return [len(ids) for ids in minilm.tokenize(texts, max_length=32)]

    with ThreadPoolExecutor(4) as pool:
        counted = [pool.submit(count, texts) for _ in range(40)]
        truncated = [pool.submit(tokenise_truncated, i) for i in range(40)]
        assert all(f.result() == expected for f in counted)
        assert all(max(f.result()) <= 32 for f in truncated)
