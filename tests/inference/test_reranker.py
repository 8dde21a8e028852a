"""The cross-encoder reranker: parity with FlagEmbedding 1.4.2's FlagReranker on tiny-reranker (token ids and
scores within 1e-5), batching, the CrossEncoder / FlagReranker call shapes, save → load, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TINY_M3, TINY_RERANKER
from trivec.errors import CheckpointError, InputError
from trivec.inference.reranker import Reranker

TOL = 1e-5


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return json.loads((TINY_RERANKER / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker.from_pretrained(TINY_RERANKER, device="cpu")


@pytest.fixture(scope="module")
def pairs(reference: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["query"], p["passage"]) for p in reference["pairs"]]


def _case(settings_: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(settings_)
    instruction = kwargs.pop("query_instruction_for_rerank", None)
    if instruction is not None:
        kwargs["query_instruction"] = instruction
    return kwargs


# ---------------------------------------------------------------------------------------------- parity
def test_token_ids_match_flagreranker(reranker: Reranker, reference: dict[str, Any], pairs) -> None:
    got = reranker.tokenize_pairs(pairs, max_length=64).input_ids
    for pair, ids, expected in zip(reference["pairs"], got, reference["input_ids_max64"], strict=True):
        assert ids == expected, pair["id"]
        assert len(ids) <= 64


@pytest.mark.parametrize(
    "case", ["raw_max512", "sigmoid_max512", "raw_max64", "raw_max64_query16", "raw_instruction"]
)
def test_scores_match_flagreranker(reranker: Reranker, reference: dict[str, Any], pairs, case: str) -> None:
    spec = reference["cases"][case]
    scores = reranker.score(pairs, **_case(spec["settings"]))
    assert scores.dtype == np.float32 and scores.shape == (len(pairs),)
    np.testing.assert_allclose(scores, spec["scores"], atol=TOL, rtol=0)


@pytest.mark.parametrize("batch_tokens", [1, 64, 100_000])
def test_batching_does_not_change_scores(
    reranker: Reranker, reference: dict[str, Any], pairs, batch_tokens
) -> None:
    scores = reranker.score(pairs, max_length=512, batch_tokens=batch_tokens)
    np.testing.assert_allclose(scores, reference["cases"]["raw_max512"]["scores"], atol=TOL, rtol=0)


def test_compute_score_shapes(reranker: Reranker, reference: dict[str, Any], pairs) -> None:
    expected = reference["cases"]["sigmoid_max512"]["scores"]
    one = reranker.compute_score(list(pairs[0]), normalize=True)
    assert isinstance(one, float) and abs(one - expected[0]) <= TOL
    many = reranker.compute_score(pairs, normalize=True)
    assert isinstance(many, list) and all(isinstance(x, float) for x in many)
    np.testing.assert_allclose(many, expected, atol=TOL)
    assert reranker.compute_score([]) == []


def test_instruction_default_and_override(reference: dict[str, Any], pairs) -> None:
    spec = reference["cases"]["raw_instruction"]
    instructed = Reranker.from_pretrained(
        TINY_RERANKER, device="cpu", query_instruction=spec["settings"]["query_instruction_for_rerank"]
    )
    np.testing.assert_allclose(instructed.score(pairs), spec["scores"], atol=TOL)
    plain = reference["cases"]["raw_max512"]["scores"]
    np.testing.assert_allclose(instructed.score(pairs, query_instruction=""), plain, atol=TOL)


def test_rank_sorts_best_first(reranker: Reranker, reference: dict[str, Any]) -> None:
    query = "What is BGE M3?"
    docs = [p["passage"] for p in reference["pairs"][:6]]
    scores = reranker.score([(query, d) for d in docs])
    ranked = reranker.rank(query, docs, top_k=3, return_documents=True)
    assert [r["corpus_id"] for r in ranked] == np.argsort(-scores, kind="stable")[:3].tolist()
    assert all(r["text"] == docs[r["corpus_id"]] for r in ranked)
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert "text" not in reranker.rank(query, docs)[0]
    assert reranker.rank(query, []) == []


def test_predict_is_score(reranker: Reranker, pairs) -> None:
    np.testing.assert_array_equal(reranker.predict(pairs), reranker.score(pairs))


def test_save_and_reload(reranker: Reranker, pairs, tmp_path: Path) -> None:
    instructed = Reranker(reranker.model, reranker.tokenizer, device="cpu", query_instruction="Q: ")
    instructed.save_pretrained(tmp_path / "saved")
    again = Reranker.from_pretrained(tmp_path / "saved", device="cpu")
    assert again.query_instruction == "Q: "
    np.testing.assert_allclose(again.score(pairs), instructed.score(pairs), atol=1e-6)


# ------------------------------------------------------------------------------------------ BERT layout
@pytest.fixture(scope="module")
def bert_reranker() -> Reranker:
    """A random one-logit BERT classifier on all-MiniLM-L6-v2's tokenizer (WordPiece, token types)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from trivec.models.checkpoint import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    return Reranker(BertForSequenceClassification(config).eval(), tokenizer, device="cpu")


def test_bert_pairs_have_token_types(bert_reranker: Reranker) -> None:
    tokenizer = bert_reranker.tokenizer
    inputs = bert_reranker.tokenize_pairs([("what is a panda?", "the giant panda is a bear.")], max_length=64)
    expected = tokenizer("what is a panda?", "the giant panda is a bear.")
    assert inputs.input_ids[0] == expected["input_ids"]
    assert inputs.token_type_ids is not None and inputs.token_type_ids[0] == expected["token_type_ids"]
    assert set(inputs.token_type_ids[0]) == {0, 1}
    # the model sees the types: the score differs from the same ids with types all 0
    with torch.inference_mode():
        ids = torch.tensor(inputs.input_ids)
        typed = bert_reranker.model(input_ids=ids, token_type_ids=torch.tensor(inputs.token_type_ids)).logits
    assert (
        abs(
            float(bert_reranker.score([("what is a panda?", "the giant panda is a bear.")])[0]) - float(typed)
        )
        < 1e-5
    )
    assert bert_reranker.position_limit == 128


# ------------------------------------------------------------------------------------------- properties
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=120)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6),
    max_length=st.integers(8, 96),
    normalize=st.booleans(),
)
def test_scores_are_finite_order_free_and_bounded(reranker: Reranker, items, max_length, normalize) -> None:
    inputs = reranker.tokenize_pairs(items, max_length=max_length)
    assert all(len(ids) <= max_length for ids in inputs.input_ids)
    assert all(ids[0] == 0 and ids[-1] == 2 for ids in inputs.input_ids)  # <s> … </s>
    scores = reranker.score(items, max_length=max_length, normalize=normalize)
    assert np.isfinite(scores).all()
    if normalize:
        assert ((scores >= 0) & (scores <= 1)).all()
        raw = reranker.score(items, max_length=max_length)
        np.testing.assert_allclose(scores, 1 / (1 + np.exp(-raw.astype(np.float64))), atol=1e-6)
    reverse = reranker.score(items[::-1], max_length=max_length, normalize=normalize, batch_tokens=1)
    np.testing.assert_allclose(reverse[::-1], scores, atol=1e-5)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=TEXT, max_length=st.integers(8, 64))
def test_empty_passage_is_the_query_alone(reranker: Reranker, query: str, max_length: int) -> None:
    ids = reranker.tokenize_pairs([(query, "")], max_length=max_length).input_ids[0]
    assert 2 not in ids[1:-1]  # one closing separator: no pair template
    assert len(ids) <= max_length and math.isfinite(float(reranker.score([(query, "")])[0]))


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("pairs_", "message"),
    [
        ("q", "pairs must be a list of (query, passage) pairs"),
        ([("q",)], "pair at position 0 must be a (query, passage) pair of strings"),
        ([("q", "p"), ("q", 3)], "pair at position 1 must be a (query, passage) pair of strings"),
        ([("q", "p\ud800")], "the passage of pair 0 contains a lone surrogate"),
        (7, "pairs must be a list of (query, passage) pairs, not int"),
    ],
)
def test_bad_pairs(reranker: Reranker, pairs_, message: str) -> None:
    with pytest.raises(InputError) as info:
        reranker.score(pairs_)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_length": 9000}, "max_length 9000 exceeds the model's limit of 8192 tokens"),
        ({"max_length": 3}, "max_length must be an integer ≥ 4"),
        ({"max_length": 64, "query_max_length": 61}, "query_max_length 61 leaves no room for the passage"),
        ({"query_max_length": 0}, "query_max_length must be a positive integer"),
        ({"batch_tokens": 0}, "batch_tokens must be a positive integer"),
    ],
)
def test_bad_options(reranker: Reranker, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reranker.score([("q", "p")], **kwargs)


def test_rank_bad_input(reranker: Reranker) -> None:
    with pytest.raises(InputError, match="documents must be a list of strings"):
        reranker.rank("q", "just one string")
    with pytest.raises(InputError, match="document at position 1 is int"):
        reranker.rank("q", ["a", 1])  # type: ignore[list-item]
    with pytest.raises(InputError, match="top_k must be a positive integer"):
        reranker.rank("q", ["a"], top_k=0)


def test_an_embedding_model_is_not_a_reranker() -> None:
    with pytest.raises(CheckpointError, match="is not a reranker: its config names XLMRobertaModel"):
        Reranker.from_pretrained(TINY_M3, device="cpu")


def test_a_multi_label_classifier_is_not_a_reranker(tmp_path: Path) -> None:
    for path in TINY_RERANKER.iterdir():
        (tmp_path / path.name).symlink_to(path.resolve())
    config = json.loads((TINY_RERANKER / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = {"0": "A", "1": "B"}
    config["label2id"] = {"A": 0, "B": 1}
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError, match="has 2 labels; a reranker gives one relevance logit"):
        Reranker.from_pretrained(tmp_path, device="cpu")


def test_missing_model_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        Reranker.from_pretrained(tmp_path / "nowhere", device="cpu")
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        Reranker.from_pretrained(tmp_path, device="cpu")
