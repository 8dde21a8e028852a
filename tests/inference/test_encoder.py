"""Encoder behaviour: input checks, order and batching invariance (hypothesis), MCLS, queries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trivec import Embedder, InputError

WORDS = ["BGE", "M3", "dense", "sparse", "retrieval", "北京", "Fuchs", "über", "🤖", "the", "cat", ",", "."]
text_strategy = st.lists(st.sampled_from(WORDS), min_size=0, max_size=60).map(" ".join)


def assert_same(a, b, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(a.dense, b.dense, atol=atol)
    for x, y in zip(a.sparse, b.sparse, strict=True):
        assert np.array_equal(x.indices, y.indices)
        np.testing.assert_allclose(x.values, y.values, atol=atol)
    for x, y in zip(a.colbert, b.colbert, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, atol=atol)


def encode_all(embedder: Embedder, texts: list[str], **kwargs) -> object:
    return embedder.encode(texts, dense=True, sparse=True, colbert=True, **kwargs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(text_strategy, min_size=1, max_size=12),
    budget=st.integers(min_value=8, max_value=2000),
    max_batch=st.integers(min_value=1, max_value=16),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_outputs_do_not_depend_on_budget_batch_size_or_order(
    tiny: Embedder, texts, budget, max_batch, seed
) -> None:
    reference = encode_all(tiny, texts)
    saved = tiny.max_batch_size
    try:
        tiny.max_batch_size = max_batch
        batched = encode_all(tiny, texts, batch_tokens=budget)
    finally:
        tiny.max_batch_size = saved
    assert_same(reference, batched)
    order = np.random.default_rng(seed).permutation(len(texts))
    shuffled = encode_all(tiny, [texts[i] for i in order])
    np.testing.assert_allclose(shuffled.dense, reference.dense[order], atol=1e-5)
    for position, i in enumerate(order):
        np.testing.assert_allclose(shuffled.colbert[position], reference.colbert[i], atol=1e-5)


def test_empty_inputs(tiny: Embedder) -> None:
    empty = encode_all(tiny, [])
    assert len(empty) == 0 and empty.dense.shape == (0, 64) and empty.sparse == [] and empty.colbert == []
    blank = encode_all(tiny, [""])
    assert blank.num_tokens == [2]
    assert blank.colbert[0].shape == (1, 64)  # the </s> row, as the reference returns


def test_single_string_is_one_text(tiny: Embedder) -> None:
    assert tiny.encode("hello").dense.shape == (1, 64)


@pytest.mark.parametrize("bad", [[1], ["ok", None], ["ok", b"bytes"], 7])
def test_non_strings_are_refused(tiny: Embedder, bad) -> None:
    with pytest.raises(InputError, match=r"not str|must be a string"):
        tiny.encode(bad)


def test_argument_errors(tiny: Embedder) -> None:
    with pytest.raises(InputError, match="at least one output"):
        tiny.encode(["x"], dense=False)
    with pytest.raises(InputError, match="exceeds the model's limit"):
        tiny.encode(["x"], max_length=9000)
    with pytest.raises(InputError, match="integer"):
        tiny.encode(["x"], max_length=0)
    with pytest.raises(InputError, match="unknown prompt name 'classification'"):
        tiny.encode(["x"], prompt_name="classification")


def test_explicit_prompt_is_prepended(tiny: Embedder) -> None:
    prompt = "Represent this sentence for searching relevant passages: "
    with_prompt = tiny.encode(["what is m3"], prompt=prompt)
    manual = tiny.encode([prompt + "what is m3"])
    np.testing.assert_array_equal(with_prompt.dense, manual.dense)
    # the tiny model has no prompts: the standard roles give none
    assert with_prompt.num_tokens[0] > tiny.encode(["what is m3"], prompt_name="query").num_tokens[0]


def test_truncation_keeps_the_final_separator(tiny: Embedder) -> None:
    ids = tiny.tokenize(["word " * 100], max_length=16)[0]
    assert len(ids) == 16 and ids[0] == tiny.tokenizer.cls_token_id and ids[-1] == tiny.tokenizer.eos_token_id


def test_mcls_short_texts_are_unchanged(tiny: Embedder) -> None:
    texts = ["short text", "another one"]
    assert_same(encode_all(tiny, texts), encode_all(tiny, texts, mcls=True), atol=0)


def test_mcls_long_text_averages_cls_slots(tiny: Embedder) -> None:
    text = " ".join(f"w{i}" for i in range(700))
    plain = encode_all(tiny, [text])
    mcls = encode_all(tiny, [text], mcls=True)
    n = plain.num_tokens[0]
    assert mcls.num_tokens[0] == n + (n - 2) // 256  # one extra CLS per further 256 content tokens
    assert not np.allclose(plain.dense, mcls.dense)
    np.testing.assert_allclose(np.linalg.norm(mcls.dense, axis=1), 1.0, atol=1e-6)
    # the inserted CLS slots are not multi-vector rows: one row per original token after <s>
    assert mcls.colbert[0].shape == plain.colbert[0].shape
    # and MCLS never exceeds the length limit
    limited = tiny.encode([text], mcls=True, max_length=300)
    assert limited.num_tokens[0] <= 300


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
@pytest.mark.parametrize("mcls", [False, True])
def test_colbert_coder_codes_each_texts_rows_as_encoded(
    tiny: Embedder, monkeypatch: pytest.MonkeyPatch, packed: bool, mcls: bool
) -> None:
    if not packed:
        monkeypatch.setattr(tiny, "_packed", None)
    texts = ["short text", " ".join(f"w{i}" for i in range(600)), "über 北京 🤖", "the cat"]
    seen: list[np.ndarray] = []

    def coder(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        seen.append(rows)
        return np.round(rows * 7).astype(np.int8), rows.sum(axis=1)

    plain = encode_all(tiny, texts, mcls=mcls, batch_tokens=300)
    coded = encode_all(tiny, texts, mcls=mcls, batch_tokens=300, colbert_coder=coder)
    assert coded.colbert is None and len(coded.colbert_codes) == len(texts) == len(seen)
    np.testing.assert_array_equal(coded.dense, plain.dense)
    for (codes, scales), rows in zip(coded.colbert_codes, plain.colbert, strict=True):
        np.testing.assert_array_equal(codes, np.round(rows * 7).astype(np.int8))
        np.testing.assert_array_equal(scales, rows.sum(axis=1))
    without_colbert = tiny.encode(texts, colbert=False, colbert_coder=coder)
    assert without_colbert.colbert is None and without_colbert.colbert_codes is None


def test_trim_heap_trims_after_each_forward_pass_and_changes_nothing(
    tiny: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trivec.inference import encoder

    texts = [" ".join(f"w{i}" for i in range(n)) for n in (5, 300, 40, 120, 7)]
    plain = encode_all(tiny, texts, batch_tokens=300)
    calls: list[int] = []
    monkeypatch.setattr(encoder.heap, "trim", lambda: calls.append(1) or True)
    passes: list[int] = []
    run = tiny._run_packed
    monkeypatch.setattr(tiny, "_run_packed", lambda *a: passes.append(1) or run(*a))
    trimmed = encode_all(tiny, texts, batch_tokens=300, trim_heap=True)
    assert len(passes) > 1 and len(calls) == len(passes)
    np.testing.assert_array_equal(trimmed.dense, plain.dense)
    for a, b in zip(trimmed.colbert, plain.colbert, strict=True):
        np.testing.assert_array_equal(a, b)
    encode_all(tiny, texts, batch_tokens=300)
    assert len(calls) == len(passes) // 2  # not asked for: no trims
