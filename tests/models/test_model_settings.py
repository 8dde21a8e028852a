"""A model's own settings in `trivec_config.json`: `fold_capitals` (text in capitals read lower-cased),
`fusion_weights` (its hybrid weights), `fusion` (its fusion method) and `fusion_spreads` (`auto` fusion's
calibrated ranges) — read, validated, saved, and used by every caller that fuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trivec import CheckpointError, Embedder, M3Model
from trivec.errors import InputError
from trivec.models.casing import MIN_CASED_LETTERS, fold_capitals, in_capitals
from trivec.models.weights import DEFAULT_WEIGHTS, normalize_weights

SHOUTING = "I AM INTERESTED IN THE IDENTIFICATION OF NOVEL COMPUTER ARCHITECTURES."
WEIGHTS = {"dense": 0.25, "sparse": 0.25, "colbert": 0.5}
SPREADS = {"dense": [0.0, 0.5], "sparse": [0.001, 2.0], "colbert": [0.0, 0.5]}


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
    assert model.fusion is None and model.fusion_spreads is None
    assert Embedder(model).fusion_defaults.method == "weighted"


def test_settings_round_trip_through_save_pretrained(tiny_copy: Path, tmp_path: Path) -> None:
    settings = {"fold_capitals": True, "fusion_weights": WEIGHTS, "fusion": "auto", "fusion_spreads": SPREADS}
    write_settings(tiny_copy, settings)
    model = M3Model.from_pretrained(tiny_copy)
    assert model.fold_capitals is True and model.fusion_weights == WEIGHTS
    assert model.fusion == "auto" and model.fusion_spreads == {m: tuple(r) for m, r in SPREADS.items()}
    model.save_pretrained(tmp_path / "saved")
    again = M3Model.from_pretrained(tmp_path / "saved")
    assert again.fold_capitals is True and again.fusion_weights == WEIGHTS
    assert again.fusion == "auto" and again.fusion_spreads == model.fusion_spreads
    defaults = Embedder(again).fusion_defaults
    with pytest.raises(InputError, match="auto fusion needs the model's calibrated score spreads"):
        M3Model(again.backbone, again.tokenizer, fusion="auto")
    with pytest.raises(InputError, match="unknown fusion 'mean'"):
        M3Model(again.backbone, again.tokenizer, fusion="mean")
    assert (defaults.weights, defaults.method, defaults.spreads) == (WEIGHTS, "auto", model.fusion_spreads)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fold_capitals": "yes"}, "fold_capitals must be true or false"),
        ({"fusion_weights": [0.4, 0.2, 0.4]}, "fusion_weights: expected an object"),
        ({"fusion_weights": {"dense": -1}}, "fusion_weights: weights must be finite and ≥ 0"),
        ({"fusion_weights": {"lexical": 1}}, "fusion_weights: unknown score mode"),
        ({"fusion": "mean"}, "fusion: unknown fusion 'mean'; expected one of weighted, rrf, zscore, auto"),
        ({"fusion": "auto"}, "fusion: auto fusion needs the model's calibrated score spreads"),
        ({"fusion_spreads": {"dense": [0.2, 0.1]}}, "fusion_spreads: dense: expected [lowest, highest]"),
        ({"fusion_spreads": [0.0, 1.0]}, "fusion_spreads: expected a mapping of modes"),
        ({"fusion_spreads": {"lexical": [0.0, 1.0]}}, "fusion_spreads: unknown mode 'lexical'"),
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
    task = write_task(tmp_path / "task", passages)
    results = evaluate(embedder, [task], modes="all", progress=False, report=False)
    assert results[0]["settings"]["weights"] == WEIGHTS
    assert normalize_weights(None, WEIGHTS) == WEIGHTS and normalize_weights(None) == DEFAULT_WEIGHTS


def test_the_models_fusion_is_the_default_of_search_and_eval(tiny_copy: Path, tmp_path: Path) -> None:
    """`fusion: auto` with ranges no query's spreads fit: every search and evaluation fuses by z-scores
    unless the call names a fusion; ranges that fit every query give the weighted mean."""
    from trivec.evaluation.runner import evaluate
    from trivec.retrieval import Index

    passages = [
        "boundary layer transition on a flat plate",
        "heat transfer in supersonic flow",
        "the layer of air over a wing",
    ]
    plain = Embedder.from_pretrained(tiny_copy, device="cpu")
    with Index.create(tmp_path / "ix", model=plain) as index:
        index.add([{"id": i, "text": t} for i, t in zip("abc", passages, strict=True)])
    task = write_task(tmp_path / "task", passages)

    def ranked(embedder: Embedder, **kwargs: object) -> list[tuple[str, float]]:
        with Index.open(tmp_path / "ix", embedder) as opened:
            return [(hit.id, hit.score) for hit in opened.search("boundary layer", top_k=3, **kwargs)[0]]

    with pytest.raises(InputError, match="auto fusion needs the model's calibrated score spreads"):
        ranked(plain, fusion="auto")
    with pytest.raises(InputError, match="auto fusion needs"):
        evaluate(plain, [task], modes="all", fusion="auto", progress=False, report=False)
    # nothing fused, nothing refused: a single mode ranks by its own scores
    assert ranked(plain, fusion="auto", mode="dense") == ranked(plain, mode="dense")
    evaluate(plain, [task], modes="dense,sparse", fusion="auto", progress=False, report=False)
    nowhere = {m: [5.0, 6.0] for m in ("dense", "sparse", "colbert")}
    write_settings(tiny_copy, {"fusion": "auto", "fusion_spreads": nowhere})
    auto = Embedder.from_pretrained(tiny_copy, device="cpu")
    assert ranked(auto) == ranked(auto, fusion="auto") == ranked(plain, fusion="zscore")
    with Index.open(tmp_path / "ix", auto) as opened:  # each hit says which fusion gave its score
        assert {h.fused_by for h in opened.search("boundary layer", top_k=3)[0]} == {"zscore"}
        assert {h.fused_by for h in opened.search("boundary layer", fusion="rrf")[0]} == {"rrf"}
        assert {h.fused_by for h in opened.search("boundary layer", mode="dense")[0]} == {None}
        assert opened.search("boundary layer", top_k=1)[0][0].to_dict()["fused_by"] == "zscore"
    assert ranked(auto, fusion="weighted") == ranked(plain) != ranked(auto)
    result = evaluate(auto, [task], modes="all", progress=False, report=False)[0]
    assert result["settings"]["fusion"] == "auto" and result["settings"]["fusion_spreads"] == nowhere
    zscore = evaluate(plain, [task], modes="all", fusion="zscore", progress=False, report=False)[0]
    assert result["scores"] == zscore["scores"]
    everywhere = {m: [0.0, 100.0] for m in ("dense", "sparse", "colbert")}
    write_settings(tiny_copy, {"fusion": "auto", "fusion_spreads": everywhere})
    within = Embedder.from_pretrained(tiny_copy, device="cpu")
    assert ranked(within) == ranked(plain)
    with Index.open(tmp_path / "ix", within) as opened:
        assert {h.fused_by for h in opened.search("boundary layer", top_k=3)[0]} == {"weighted"}


def write_task(task: Path, passages: list[str]) -> Path:
    """A one-query retrieval folder over `passages` (the first is relevant)."""
    task.mkdir()
    ids = "abcdefgh"[: len(passages)]
    (task / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, passages, strict=True)),
        encoding="utf-8",
    )
    (task / "queries.jsonl").write_text(
        json.dumps({"id": "q", "text": "boundary layer"}) + "\n", encoding="utf-8"
    )
    (task / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq\ta\t1\n", encoding="utf-8")
    (task.parent / "tasks.tsv").write_text(
        f"folder\ttype\tlanguages\n{task.name}\tretrieval\ten\n", encoding="utf-8"
    )
    return task
