"""A model's own settings in `trivec_config.json`: `fold_capitals` (text in capitals read lower-cased) and
`fusion_weights` (its hybrid weights) — read, validated, saved, and used by every caller that fuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trivec import CheckpointError, Embedder, M3Model
from trivec.models.casing import MIN_CASED_LETTERS, fold_capitals, in_capitals
from trivec.models.weights import DEFAULT_WEIGHTS, normalize_weights

SHOUTING = "I AM INTERESTED IN THE IDENTIFICATION OF NOVEL COMPUTER ARCHITECTURES."
WEIGHTS = {"dense": 0.25, "sparse": 0.25, "colbert": 0.5}


def write_settings(directory: Path, settings: dict) -> None:
    (directory / "trivec_config.json").write_text(json.dumps(settings), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- the rule
def test_text_in_capitals_is_folded_and_normal_text_is_not() -> None:
    assert fold_capitals(SHOUTING) == SHOUTING.lower()
    for kept in (
        "NASA launched BGE-M3 in Paris.",
        "ABCDEFGHIJ KLMNO",
        "短い日本語のテキスト",
        "what is BM25?",
    ):
        assert fold_capitals(kept) == kept
    assert in_capitals("A" * MIN_CASED_LETTERS) and not in_capitals("A" * (MIN_CASED_LETTERS - 1))
    assert not in_capitals("Ab" * MIN_CASED_LETTERS)  # as many lower-case as upper-case letters
    # Latin acronyms in a text whose letters have no case: a minority of its letters, kept
    mixed = "NBA 和 FIBA 的 MVP 是 NASA 与 UNESCO 的合作伙伴关系中的重要部分之一，由北京和上海主办"
    assert sum(c.isupper() for c in mixed) >= MIN_CASED_LETTERS and fold_capitals(mixed) == mixed


@given(st.text(max_size=80))
def test_folding_is_idempotent_and_never_changes_uncased_or_lower_text(text: str) -> None:
    once = fold_capitals(text)
    assert fold_capitals(once) == once
    assert once in (text, text.lower())
    if text == text.lower():
        assert once == text


# ----------------------------------------------------------------------------------------------- settings
def test_settings_default_to_off_and_m3_weights(tiny_copy: Path) -> None:
    model = M3Model.from_pretrained(tiny_copy)
    assert model.fold_capitals is False and model.fusion_weights is None
    assert Embedder(model).fusion_weights == DEFAULT_WEIGHTS


def test_settings_round_trip_through_save_pretrained(tiny_copy: Path, tmp_path: Path) -> None:
    write_settings(tiny_copy, {"fold_capitals": True, "fusion_weights": WEIGHTS})
    model = M3Model.from_pretrained(tiny_copy)
    assert model.fold_capitals is True and model.fusion_weights == WEIGHTS
    model.save_pretrained(tmp_path / "saved")
    again = M3Model.from_pretrained(tmp_path / "saved")
    assert again.fold_capitals is True and again.fusion_weights == WEIGHTS


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fold_capitals": "yes"}, "fold_capitals must be true or false"),
        ({"fusion_weights": [0.4, 0.2, 0.4]}, "fusion_weights: expected an object"),
        ({"fusion_weights": {"dense": -1}}, "fusion_weights: weights must be finite and ≥ 0"),
        ({"fusion_weights": {"lexical": 1}}, "fusion_weights: unknown score mode"),
    ],
)
def test_bad_settings_name_the_file_and_the_key(tiny_copy: Path, settings: dict, message: str) -> None:
    write_settings(tiny_copy, settings)
    with pytest.raises(CheckpointError, match=r"trivec_config\.json") as caught:
        M3Model.from_pretrained(tiny_copy)
    assert message in str(caught.value)


# ----------------------------------------------------------------------------------------------- use
def test_a_folding_model_encodes_text_in_capitals_as_its_lower_case(tiny_copy: Path) -> None:
    plain = Embedder.from_pretrained(tiny_copy, device="cpu")
    write_settings(tiny_copy, {"fold_capitals": True})
    folding = Embedder.from_pretrained(tiny_copy, device="cpu")
    texts = [SHOUTING, "Normal text with NASA in it."]
    out = folding.encode(texts, dense=True, sparse=True, colbert=True, prompt_name="query")
    ref = plain.encode(
        [SHOUTING.lower(), texts[1]], dense=True, sparse=True, colbert=True, prompt_name="query"
    )
    assert out.dense is not None and ref.dense is not None
    np.testing.assert_array_equal(out.dense, ref.dense)
    assert out.sparse[0].to_dict() == ref.sparse[0].to_dict()
    np.testing.assert_array_equal(out.colbert[1], ref.colbert[1])
    shouted = plain.encode([SHOUTING], dense=True)
    assert shouted.dense is not None and not np.allclose(shouted.dense[0], out.dense[0])


def test_the_models_weights_are_the_default_of_score_search_and_eval(tiny_copy: Path, tmp_path: Path) -> None:
    from trivec.evaluation.runner import evaluate
    from trivec.retrieval import Index

    write_settings(tiny_copy, {"fusion_weights": WEIGHTS})
    embedder = Embedder.from_pretrained(tiny_copy, device="cpu")
    assert embedder.fusion_weights == WEIGHTS
    passages = ["boundary layer transition on a flat plate", "heat transfer in supersonic flow"]
    scores = embedder.score("boundary layer", passages)
    expected = sum(scores[m] * WEIGHTS[m] for m in WEIGHTS)
    np.testing.assert_allclose(scores["colbert+sparse+dense"], expected, rtol=1e-5)
    given = embedder.score("boundary layer", passages, weights=DEFAULT_WEIGHTS)
    np.testing.assert_allclose(
        given["colbert+sparse+dense"], sum(scores[m] * DEFAULT_WEIGHTS[m] for m in WEIGHTS), rtol=1e-5
    )
    with Index.create(tmp_path / "ix", model=embedder) as index:
        index.add([{"id": i, "text": t} for i, t in zip("ab", passages, strict=True)])

        def ranked(**kwargs: object) -> list[tuple[str, float]]:
            return [(hit.id, hit.score) for hit in index.search("boundary layer", top_k=2, **kwargs)[0]]

        assert ranked() == ranked(weights=WEIGHTS) != ranked(weights=DEFAULT_WEIGHTS)
    task = tmp_path / "task"
    task.mkdir()
    (task / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip("ab", passages, strict=True)),
        encoding="utf-8",
    )
    (task / "queries.jsonl").write_text(
        json.dumps({"id": "q", "text": "boundary layer"}) + "\n", encoding="utf-8"
    )
    (task / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta\t1\n", encoding="utf-8")
    (tmp_path / "tasks.tsv").write_text("folder\ttype\tlanguages\ntask\tretrieval\ten\n", encoding="utf-8")
    results = evaluate(embedder, [task], modes="all", progress=False, report=False)
    assert results[0]["settings"]["weights"] == WEIGHTS
    assert normalize_weights(None, WEIGHTS) == WEIGHTS and normalize_weights(None) == DEFAULT_WEIGHTS
