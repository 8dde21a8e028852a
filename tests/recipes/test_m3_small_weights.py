"""The validation sets of m3-small's weights recipe: cut 2 asks new questions about new paragraphs, and
neither cut asks about anything the training run read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.recipes.recipe_files import load_recipe, write_jsonl


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _asked(folder: Path) -> tuple[set[str], set[str]]:
    """The questions of a built set and the paragraphs they are about."""
    corpus = {row["id"]: row["text"] for row in _read(folder / "corpus.jsonl")}
    queries = {row["id"]: row["text"] for row in _read(folder / "queries.jsonl")}
    qrels = [line.split("\t") for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    return set(queries.values()), {corpus[d] for _, d, _ in qrels}


def test_cuts_ask_disjoint_questions_about_unseen_paragraphs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 paragraphs, two questions each; the training run read the rows of paragraphs 0–9
    rows = [
        {"query": f"question {q} about {p}", "pos": [f"paragraph {p}"], "neg": [f"paragraph {(p + 1) % 40}"]}
        for p in range(40)
        for q in range(2)
    ]
    write_jsonl(tmp_path / "shared" / "data" / "tydiqa-id-train" / "train.jsonl", rows)
    mined = tmp_path / "tydiqa-id-train-mined.jsonl"
    write_jsonl(mined, [r for r in rows if int(r["pos"][0].split()[1]) < 10])
    config = {"data": {"train_data": [str(mined)], "max_examples_per_file": 1000}}
    recipe = load_recipe("m3_small_weights", monkeypatch, tmp_path / "shared")
    seen = recipe.seen_texts(config, "tydiqa-id-train")
    first = recipe.build_set([config], "tydiqa-id-train", tmp_path / "cut1", 10, 25)
    second = recipe.build_set([config], "tydiqa-id-train", tmp_path / "cut2", 10, 25, cut=2)
    (q1, p1), (q2, p2) = _asked(first), _asked(second)
    assert len(q1) == len(q2) == 10 and len(p1) == len(p2) == 10
    assert not (q1 & q2) and not (p1 & p2)
    assert not ((q1 | q2 | p1 | p2) & seen)
    # a third cut gets what is left: paragraphs 11–39 are unseen (10 is a negative of a row read), 29 − 20
    _, p3 = _asked(recipe.build_set([config], "tydiqa-id-train", tmp_path / "cut3", 10, 25, cut=3))
    assert len(p3) == 9 and not (p3 & (p1 | p2 | seen))
