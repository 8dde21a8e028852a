"""The translation pairs of m3-small's recipe: aligned by position, and never a sentence of an evaluation set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.recipes.recipe_files import load_recipe, write_jsonl


def _shared(tmp_path: Path) -> Path:
    data = tmp_path / "shared" / "data"
    train = [
        ("A plane is taking off.", "An air plane is taking off.", "一架飞机正在起飞。", "一架飞机起飞了。"),
        ("A man plays the flute.", "Three men play chess.", "一个男人在吹笛子。", "三个人在下棋。"),
    ]
    rows = []
    for lang, i1, i2 in (("en", 0, 1), ("zh", 2, 3)):
        rows += [
            {"sentence1": t[i1], "sentence2": t[i2], "score": 4.0, "lang": lang, "split": "train"}
            for t in train
        ]
    # an English test row: not a training pair, and not a reason to drop anything by itself
    rows.append(
        {
            "sentence1": "A dog runs.",
            "sentence2": "A cat sleeps.",
            "score": 1.0,
            "lang": "en",
            "split": "test",
        }
    )
    write_jsonl(data / "stsb-multi-mt" / "pairs.jsonl", rows)
    # semeval-sts evaluates on "Three men play chess." (other case and spacing): its pair must go
    write_jsonl(
        data / "semeval-sts" / "pairs.jsonl",
        [{"sentence1": "three  men play CHESS.", "sentence2": "x", "score": 3}],
    )
    write_jsonl(
        data / "tatoeba-bitext" / "pairs.jsonl",
        [{"sentence1": "一个男人在吹笛子。", "sentence2": "y", "lang": "zh"}],
    )
    for folder in ("sick", "mrpc", "stsb-zh-cnsd", "bustm", "ocnli"):
        write_jsonl(data / folder / "pairs.jsonl", [{"sentence1": "a", "sentence2": "b", "split": "train"}])
    return tmp_path / "shared"


def test_pairs_are_aligned_and_decontaminated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = load_recipe("m3_small_bitext", monkeypatch, _shared(tmp_path))
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["m3_small_bitext.py", "--out", str(out)])
    module.main()
    en_zh = [
        json.loads(line)
        for line in (out / "stsb-bitext-en-zh.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    zh_en = [
        json.loads(line)
        for line in (out / "stsb-bitext-zh-en.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["query"], r["pos"]) for r in en_zh] == [
        ("A plane is taking off.", ["一架飞机正在起飞。"]),
        ("An air plane is taking off.", ["一架飞机起飞了。"]),
    ]
    assert [(r["query"], r["pos"]) for r in zh_en] == [(r["pos"][0], [r["query"]]) for r in en_zh]
    assert all(r["neg"] == [] for r in en_zh + zh_en)


def test_misaligned_rows_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _shared(tmp_path)
    path = shared / "data" / "stsb-multi-mt" / "pairs.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows[2]["score"] = 0.5  # the first Chinese row no longer matches its English row
    write_jsonl(path, rows)
    module = load_recipe("m3_small_bitext", monkeypatch, shared)
    with pytest.raises(SystemExit, match="not aligned"):
        module.translation_pairs(shared / "data")


def test_english_validation_set_holds_only_clean_dev_paraphrases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = _shared(tmp_path)
    pairs = shared / "data" / "stsb-multi-mt" / "pairs.jsonl"
    dev = [
        ("A boy kicks a ball.", "A child kicks a ball.", 4.6),  # kept
        ("A woman slices an onion.", "A woman cuts an onion.", 4.2),  # kept
        ("A bird flies.", "Three men play chess.", 4.5),  # the document is a semeval sentence: dropped
        ("A plane is taking off.", "A jet leaves.", 4.8),  # the query is a train sentence: dropped
        ("A horse eats hay.", "A man sings.", 0.5),  # not a paraphrase: its sentence2 is a document only
    ]
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    rows += [{"sentence1": a, "sentence2": b, "score": s, "lang": "en", "split": "dev"} for a, b, s in dev]
    write_jsonl(pairs, rows)
    module = load_recipe("m3_small_bitext", monkeypatch, shared)
    out = tmp_path / "val-en"
    monkeypatch.setattr(sys, "argv", ["m3_small_bitext.py", "--validation-en", str(out)])
    module.main()

    def read(name: str) -> list[dict]:
        return [json.loads(x) for x in (out / name).read_text(encoding="utf-8").splitlines()]

    corpus = {d["id"]: d["text"] for d in read("corpus.jsonl")}
    queries = {q["id"]: q["text"] for q in read("queries.jsonl")}
    qrels = [line.split("\t") for line in (out / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    assert sorted(corpus.values()) == ["A child kicks a ball.", "A man sings.", "A woman cuts an onion."]
    assert sorted(queries.values()) == ["A boy kicks a ball.", "A woman slices an onion."]
    assert sorted((queries[q], corpus[d]) for q, d, _ in qrels) == [
        ("A boy kicks a ball.", "A child kicks a ball."),
        ("A woman slices an onion.", "A woman cuts an onion."),
    ]
