"""The fusion bound of m3-small's docs: the best weighting found is a bound (never below M3's weights), the
BM25 swap keeps the set's candidates and scale, the perfect switch is never below either of its sides, and
weights picked on held-out halves are no oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.recipes.recipe_files import load_recipe, write_jsonl
from trivec import Embedder

PARAGRAPHS = [
    "Ibu kota Rusia adalah Moskwa, kota terbesar di negara itu.",
    "Nissan adalah produsen otomotif asal Jepang yang berkantor di Tokyo.",
    "Suhu air mendidih pada tekanan normal adalah seratus derajat Celsius.",
    "Borobudur adalah candi Buddha terbesar di dunia, terletak di Magelang.",
    "Sinetron adalah drama televisi bersambung yang populer di Indonesia.",
    "Gunung Everest adalah gunung tertinggi di dunia di atas permukaan laut.",
]
QUESTIONS = [
    "Apa ibu kota Rusia?",
    "Dari mana Nissan berasal?",
    "Berapa suhu air mendidih?",
    "Di mana Borobudur?",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "tydiqa-id-train"
    write_jsonl(target / "corpus.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(PARAGRAPHS)])
    write_jsonl(target / "queries.jsonl", [{"id": f"q{i}", "text": t} for i, t in enumerate(QUESTIONS)])
    qrels = "".join(f"q{i}\td{i}\t1\n" for i in range(len(QUESTIONS)))
    (target / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    return target


def test_bounds_hold(folder: Path, tiny: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    bound = load_recipe("m3_small_lexical_bound", monkeypatch, SHARED)
    scored = bound.ScoredSet(tiny, folder)
    swapped = bound.with_bm25(scored, folder, "id")
    assert [len(p["sparse"]) for p in swapped.parts] == [len(c) for c in scored.candidates]
    # one factor for the whole set: the mean best score equals the sparse mode's, queries keep their strength
    assert np.isclose(
        np.mean([p["sparse"].max() for p in swapped.parts]),
        np.mean([p["sparse"].max() for p in scored.parts]),
    )
    # the question about Russia shares words with its paragraph only: BM25 ranks that paragraph first
    first = swapped.parts[0]["sparse"]
    assert scored.candidates[0][int(np.argmax(first))] == 0
    for s in (scored, swapped):
        at_m3 = s.ndcg(bound.DEFAULT_WEIGHTS, bound.MODES)
        best, setting = bound.best_with_lexical(s)
        fusion, triple = setting.split()
        assert best >= at_m3 - 1e-9 and fusion in ("weighted", "zscore")
        assert float(triple.split("/")[1]) >= 0.05
    without = scored.ndcg({"dense": 0.5, "sparse": 0.0, "colbert": 0.5}, ("dense", "colbert"))
    assert (
        bound.perfect_switch(scored) >= max(scored.ndcg(bound.DEFAULT_WEIGHTS, bound.MODES), without) - 1e-9
    )


def test_held_out_weights_never_score_the_questions_they_were_picked_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bound = load_recipe("m3_small_lexical_bound", monkeypatch, SHARED)
    # each triple is right on one question only: picked in sample it would score 1, held out it scores 0
    assert bound.held_out_mean(np.array([[1.0, 0.0], [0.0, 1.0]])) == 0.0
    # a triple right everywhere (and first on ties) is found whichever half picks
    assert bound.held_out_mean(np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]])) == 1.0
    # ties go to the first triple, the nearest to M3's weights (the second would score 0.75)
    assert bound.held_out_mean(np.array([[0.5, 0.5], [0.5, 1.0]])) == 0.5
    assert bound.lexical_triples()[0] == bound.DEFAULT_WEIGHTS
    assert all(w["sparse"] >= 0.05 - 1e-9 for w in bound.lexical_triples())


def test_a_folder_that_is_not_a_validation_set_is_named(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bound = load_recipe("m3_small_lexical_bound", monkeypatch, SHARED)
    (folder / "queries.jsonl").write_text("", encoding="utf-8")
    cases = {
        tmp_path / "elsewhere": "not named after a training folder",
        tmp_path / "missing" / "tydiqa-id-train": "no corpus.jsonl, queries.jsonl, qrels.tsv",
        folder: "no questions in queries.jsonl",
    }
    for path, message in cases.items():
        monkeypatch.setattr("sys.argv", ["m3_small_lexical_bound.py", str(path)])
        with pytest.raises(SystemExit):
            bound.main()
        assert message in capsys.readouterr().err
