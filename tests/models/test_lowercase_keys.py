"""`lowercase_sparse_keys`: lexical weights keyed by the lower-case pieces of each word, so that lexical
matching ignores case in a cased vocabulary (`trivec.models.casing.LowercaseKeys`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.conftest import XLMR_TOKENIZER
from trivec import CheckpointError, Embedder, M3Model, SparseVector
from trivec.models.casing import LowercaseKeys, lower_case
from trivec.retrieval.identity import identify


@pytest.fixture(scope="module")
def xlmr() -> object:
    return AutoTokenizer.from_pretrained(str(XLMR_TOKENIZER))


@pytest.fixture(scope="module")
def keys(xlmr: object) -> LowercaseKeys:
    return LowercaseKeys(xlmr, frozenset(xlmr.all_special_ids))  # type: ignore[attr-defined]


def pieces(tokenizer: object, ids: np.ndarray) -> list[str]:
    return tokenizer.convert_ids_to_tokens([int(i) for i in ids])  # type: ignore[attr-defined]


def test_a_capitalised_word_is_keyed_by_its_lower_case_pieces_with_their_weights(xlmr, keys) -> None:
    ids = np.array(xlmr("Kapan Rusia?")["input_ids"])  # <s> ▁Kapa n ▁Rusia ? </s>
    assert pieces(xlmr, ids) == ["<s>", "▁Kapa", "n", "▁Rusia", "?", "</s>"]
    weights = np.array([0.9, 0.1, 0.3, 0.5, 0.2, 0.9], dtype=np.float32)
    out_ids, out_weights = keys(ids, weights)
    got: dict[str, float] = {}
    for piece, weight in zip(pieces(xlmr, out_ids), out_weights.tolist(), strict=True):
        got[piece] = max(weight, got.get(piece, 0.0))  # the largest weight of a key, as a sparse vector keeps
    # `▁Kapa`+`n` → `▁kapan`: the larger weight; `▁Rusia?` → `▁rus`, `ia`, `?`: each the pieces it overlaps
    assert got == pytest.approx({"<s>": 0.9, "▁kapan": 0.3, "▁rus": 0.5, "ia": 0.5, "?": 0.2, "</s>": 0.9})


def test_text_without_capitals_keeps_its_ids_and_weights_exactly(xlmr, keys) -> None:
    for text in ("kapan rusia memulai industri?", "中文文本和日本語のテキスト", "ภาษาไทย", "مرحبا بالعالم"):
        ids = np.array(xlmr(text)["input_ids"])
        weights = np.linspace(0.1, 1.0, ids.size, dtype=np.float32)
        out_ids, out_weights = keys(ids, weights)
        assert np.array_equal(out_ids, ids) and np.array_equal(out_weights, weights)


def test_a_special_token_spelled_in_the_text_keeps_its_pieces(xlmr, keys) -> None:
    ids = np.array(xlmr("use <MASK> token")["input_ids"])
    out_ids, _ = keys(ids, np.ones(ids.size, dtype=np.float32))
    assert xlmr.mask_token_id not in out_ids.tolist()  # not turned into the real <mask>
    assert {"MAS", "K"} <= set(pieces(xlmr, out_ids))


def test_the_word_after_an_unknown_character_is_lower_cased_as_a_word_of_its_own(xlmr, keys) -> None:
    ids = np.array(xlmr("Hello⸻World")["input_ids"])
    assert xlmr.unk_token_id in ids.tolist()
    weights = np.arange(1, ids.size + 1, dtype=np.float32)
    out_ids, out_weights = keys(ids, weights)
    got = dict(zip(pieces(xlmr, out_ids), out_weights.tolist(), strict=True))
    assert "World" not in got and got["▁world"] == weights[ids.tolist().index(xlmr.unk_token_id) + 1]


def test_dotted_capital_i_lower_cases_to_a_plain_i() -> None:
    assert lower_case("İstanbul") == "istanbul" == lower_case("ISTANBUL")


WORDS = ["Rusia", "rusia", "Jakarta", "HAK", "cipta", "Straße", "İstanbul", "Presiden", "NASA", "Ça", "été"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8), st.sampled_from(["", ",", "?", "."]))
def test_keys_are_the_pieces_of_the_lower_cased_text(xlmr, keys, words: list[str], mark: str) -> None:
    text = " ".join(words) + mark
    ids = np.array(xlmr(text)["input_ids"])
    weights = np.arange(1, ids.size + 1, dtype=np.float32)
    out_ids, out_weights = keys(ids, weights)
    assert set(out_ids.tolist()) == set(xlmr(lower_case(text))["input_ids"])
    # every key's weight is one of the weights of the text as written (the largest of those it overlaps)
    assert set(out_weights.tolist()) <= set(weights.tolist())


def test_a_word_piece_vocabulary_is_refused(minilm: Embedder) -> None:
    with pytest.raises(CheckpointError, match="lowercase_sparse_keys needs a SentencePiece vocabulary"):
        LowercaseKeys(minilm.tokenizer, frozenset())


# ----------------------------------------------------------------------------------------------- a model
def test_the_flag_is_read_saved_fingerprinted_and_applied(tiny_copy: Path, tmp_path: Path) -> None:
    plain = Embedder.from_pretrained(tiny_copy)
    (tiny_copy / "trivec_config.json").write_text(
        json.dumps({"lowercase_sparse_keys": True}), encoding="utf-8"
    )
    model = M3Model.from_pretrained(tiny_copy)
    assert model.lowercase_sparse_keys and not plain.model.lowercase_sparse_keys
    model.save_pretrained(tmp_path / "saved")
    assert M3Model.from_pretrained(tmp_path / "saved").lowercase_sparse_keys
    folded = Embedder(model)
    assert identify(folded).fingerprint != identify(plain).fingerprint  # an index of piece keys is refused
    lower = ["kapan rusia memulai industri", "presiden pertama"]
    for a, b in zip(
        plain.encode(lower, dense=False, sparse=True).sparse,
        folded.encode(lower, dense=False, sparse=True).sparse,
        strict=True,
    ):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
    cased = ["Kapan Rusia memulai industri", "PRESIDEN Pertama"]
    for text, a, b in zip(
        cased,
        plain.encode(cased, dense=False, sparse=True).sparse,
        folded.encode(cased, dense=False, sparse=True).sparse,
        strict=True,
    ):
        lowered = set(model.tokenizer(text.lower())["input_ids"])
        assert not set(a.indices.tolist()) <= lowered and set(b.indices.tolist()) <= lowered


def test_the_flag_must_be_a_boolean(tiny_copy: Path) -> None:
    (tiny_copy / "trivec_config.json").write_text(
        json.dumps({"lowercase_sparse_keys": "yes"}), encoding="utf-8"
    )
    with pytest.raises(CheckpointError, match="lowercase_sparse_keys must be true or false"):
        M3Model.from_pretrained(tiny_copy)


def test_training_keys_the_bag_of_words_as_inference_does(tiny_copy: Path) -> None:
    (tiny_copy / "trivec_config.json").write_text(
        json.dumps({"lowercase_sparse_keys": True}), encoding="utf-8"
    )
    model = M3Model.from_pretrained(tiny_copy)
    assert model.sparse_keys is not None
    batch = model.tokenizer(
        ["Kapan Rusia?", "PRESIDEN pertama Indonesia", "x"], padding=True, return_tensors="pt"
    )
    weights = torch.rand(batch["input_ids"].shape, generator=torch.Generator().manual_seed(0))
    vectors = model.sparse_vocab_vectors(batch["input_ids"], weights)
    for row, (ids, mask) in enumerate(zip(batch["input_ids"], batch["attention_mask"], strict=True)):
        length = int(mask.sum())
        keys, values = model.sparse_keys(ids[:length].numpy(), weights[row, :length].numpy())
        expected = SparseVector.from_token_weights(keys, values, model.special_token_ids)
        assert np.flatnonzero(vectors[row].numpy()).tolist() == expected.indices.tolist()
        assert np.allclose(vectors[row].numpy()[expected.indices], expected.values)
