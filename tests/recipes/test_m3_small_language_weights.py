"""Weights per language, chosen on one validation cut and judged on another: the chosen triple keeps every
mode in `all` and is the best of its set, judging uses none of the choosing questions' answers, and
`--write` stores the weights where the model reads them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.recipes.recipe_files import load_recipe, write_jsonl
from tests.recipes.test_m3_small_lexical_bound import PARAGRAPHS, QUESTIONS
from trivec import Embedder, M3Model


def write_cut(root: Path, questions: list[int]) -> Path:
    """A cut with one Indonesian set: the six paragraphs, the questions numbered `questions`."""
    target = root / "tydiqa-id-train"
    write_jsonl(target / "corpus.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(PARAGRAPHS)])
    write_jsonl(target / "queries.jsonl", [{"id": f"q{i}", "text": QUESTIONS[i]} for i in questions])
    qrels = "".join(f"q{i}\td{i}\t1\n" for i in questions)
    (target / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels, encoding="utf-8")
    write_jsonl(root / "arcd-train" / "queries.jsonl", [])  # a later cut of a small folder: no questions
    return root


def test_the_chosen_triple_is_the_best_with_every_mode(
    tmp_path: Path, tiny: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = load_recipe("m3_small_language_weights", monkeypatch, SHARED)
    cut = write_cut(tmp_path / "cut1", [0, 1, 2, 3])
    sets = recipe.scored_sets(tiny, cut, 1)
    assert list(sets) == ["id"]  # the empty Arabic set is skipped
    chosen = recipe.choose(sets, tiny.fusion_weights)["id"]
    assert min(chosen.values()) >= 0.05 - 1e-9  # every mode keeps a weight
    best = sets["id"].ndcg(chosen, recipe.MODES)
    triples = recipe.every_mode_triples()
    assert len(triples) == 171 and all(best >= sets["id"].ndcg(w, recipe.MODES) - 0.005 for w in triples)
    assert recipe.scored_sets(tiny, cut, 5) == {}  # fewer questions than asked: no set chooses
    base = sets["id"].per_query(tiny.fusion_weights, recipe.MODES)
    adopted, judged = recipe.judge(sets, tiny.fusion_weights, {}, 1)
    assert adopted == {}
    np.testing.assert_array_equal(judged, base)
    # a language adopts its weights where its judging set is large enough and they do not lose there
    own = sets["id"].per_query(chosen, recipe.MODES)
    adopted, judged = recipe.judge(sets, tiny.fusion_weights, {"id": chosen}, 1)
    assert (adopted == {"id": chosen}) == (own.mean() >= base.mean())
    np.testing.assert_array_equal(judged, own if adopted else base)
    adopted, judged = recipe.judge(sets, tiny.fusion_weights, {"id": chosen}, 5)
    assert adopted == {}  # 4 questions judge nothing at --min-questions 5
    np.testing.assert_array_equal(judged, base)


def test_main_writes_the_weights_the_model_then_reads(
    tmp_path: Path, tiny_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = load_recipe("m3_small_language_weights", monkeypatch, SHARED)
    cut1, cut2 = write_cut(tmp_path / "cut1", [0, 1]), write_cut(tmp_path / "cut2", [2, 3])
    (tiny_copy / "trivec_config.json").write_text(json.dumps({"pooling": "cls"}), encoding="utf-8")
    argv = ["x", "--choose-on", str(cut1), "--judge-on", str(cut2), "--model", str(tiny_copy)]
    monkeypatch.setattr(
        sys, "argv", [*argv, "--min-questions", "2", "--write", str(tiny_copy / "trivec_config.json")]
    )
    recipe.main()
    out = capsys.readouterr().out
    assert "| id | 2 |" in out and "pooled gain of the language's weights" in out
    settings = json.loads((tiny_copy / "trivec_config.json").read_text(encoding="utf-8"))
    written = list(settings["fusion_weights_by_language"])
    assert settings["pooling"] == "cls" and written in ([], ["id"])
    assert f"adopted: {'id' if written else 'none'};" in out
    assert (
        M3Model.from_pretrained(tiny_copy).fusion_weights_by_language
        == settings["fusion_weights_by_language"]
    )
    monkeypatch.setattr(sys, "argv", ["x", "--choose-on", str(cut1), "--judge-on", str(cut1)])
    with pytest.raises(SystemExit):
        recipe.main()
    assert "must be another cut" in capsys.readouterr().err
