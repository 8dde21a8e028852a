"""`trivec mine` (hard negatives from a rank window, margin, seeded) and `trivec data pairs` (title/body)."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import DATA, TINY_M3
from tests.training.conftest import WORDS, write_jsonl
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference import Embedder
from trivec.io import iter_jsonl
from trivec.training.mining import mine_hard_negatives, parse_range
from trivec.training.pairs import build_pairs


def mined(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def ranking(embedder: Embedder, query: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    q = embedder.encode([query], prompt_name="query", max_length=512).dense[0]
    scores = embedder.encode(texts, max_length=512).dense @ q
    return np.argsort(-scores, kind="stable"), scores


def test_negatives_come_from_the_rank_window_and_never_are_positives(
    embedder: Embedder, mining_files: tuple[Path, Path], corpus_texts: list[str], tmp_path: Path
) -> None:
    data, corpus = mining_files
    out = tmp_path / "out.jsonl"
    stats = mine_hard_negatives(embedder, data, out, corpus=corpus, rank_range=(2, 12), negatives=4, seed=1)
    rows = mined(out)
    assert len(rows) == 8 and stats.rows == 8 and stats.corpus == 60
    for row in rows:
        order, _ = ranking(embedder, row["query"], corpus_texts)
        window = {corpus_texts[i] for i in order[2:12]} - set(row["pos"])
        assert len(row["neg"]) == 4 == len(set(row["neg"]))
        assert set(row["neg"]) <= window
        assert "neg_scores" not in row and row["prompt"] == "P: "  # old teacher scores dropped, rest kept


def test_mining_is_deterministic_and_seeded(
    embedder: Embedder, mining_files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, corpus = mining_files
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        mine_hard_negatives(
            embedder, data, tmp_path / name, corpus=corpus, rank_range=(0, 30), negatives=3, seed=seed
        )
        runs.append((tmp_path / name).read_text(encoding="utf-8"))
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_margin_keeps_negatives_clearly_below_the_positive(
    embedder: Embedder, mining_files: tuple[Path, Path], corpus_texts: list[str], tmp_path: Path
) -> None:
    data, corpus = mining_files
    out = tmp_path / "out.jsonl"
    margin = 0.05
    stats = mine_hard_negatives(
        embedder, data, out, corpus=corpus, rank_range=(0, 40), negatives=5, margin=margin, seed=0
    )
    assert stats.dropped_by_margin > 0
    for row in mined(out):
        _, scores = ranking(embedder, row["query"], corpus_texts)
        positive = scores[corpus_texts.index(row["pos"][0])]
        for text in row["neg"]:
            assert scores[corpus_texts.index(text)] <= positive - margin + 1e-5


def test_short_windows_are_topped_up_or_left_short(
    embedder: Embedder, mining_files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, corpus = mining_files
    filled = mine_hard_negatives(
        embedder, data, tmp_path / "f", corpus=corpus, rank_range=(0, 3), negatives=6
    )
    assert filled.filled > 0 and all(len(r["neg"]) == 6 for r in mined(tmp_path / "f"))
    short = mine_hard_negatives(
        embedder, data, tmp_path / "s", corpus=corpus, rank_range=(0, 3), negatives=6, fill=False
    )
    assert short.short_rows == 8 and all(len(r["neg"]) <= 3 for r in mined(tmp_path / "s"))


def test_without_a_corpus_the_data_texts_are_the_candidates(embedder: Embedder, tmp_path: Path) -> None:
    rows = [
        {"query": f"{w} question", "pos": [f"{w} answer"], "neg": [f"{w} wrong", "shared"]} for w in WORDS
    ]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    mine_hard_negatives(embedder, data, tmp_path / "o", rank_range=(0, 10), negatives=2)
    texts = {t for r in rows for t in (*r["pos"], *r["neg"])}
    for row, original in zip(mined(tmp_path / "o"), rows, strict=True):
        assert set(row["neg"]) <= texts - set(original["pos"])


def test_bad_input_leaves_no_output(embedder: Embedder, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"query": "a", "pos": ["b"]}, {"query": "c", "pos": [3]}])
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in.jsonl:2: field 'pos\[0\]' must be a string"):
        mine_hard_negatives(embedder, data, out)
    assert out.read_text(encoding="utf-8") == "previous content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temp file left


@pytest.mark.parametrize("text", ["10", "a-b", "5-5", "-3-4", "10-2"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="range"):
        parse_range(text)


def test_mine_cli(mining_files: tuple[Path, Path], tmp_path: Path) -> None:
    data, corpus = mining_files
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(
        app,
        ["mine", "--model", str(TINY_M3), "--data", str(data), "--corpus", str(corpus), "--output", str(out),
         "--range", "1-20", "--negatives", "3", "--margin", "0.01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "8 rows" in result.output and "dropped by the margin" in result.output
    counts = [len(r["neg"]) for r in mined(out)]
    assert len(counts) == 8 and max(counts) == 3


def test_bm25_mining_takes_negatives_from_its_window_below_the_margin(
    mining_files: tuple[Path, Path], corpus_texts: list[str], tmp_path: Path
) -> None:
    from trivec.evaluation.bm25 import Bm25Index

    data, corpus = mining_files
    out = tmp_path / "bm25.jsonl"
    mine_hard_negatives(
        None,
        data,
        out,
        corpus=corpus,
        rank_range=(1, 15),
        negatives=4,
        margin=0.1,
        fill=False,
        retriever="bm25",
    )
    index = Bm25Index(corpus_texts, "en")
    for row in mined(out):
        scores = index.scores(row["query"])
        scaled = scores / scores.max()
        order = list(np.argsort(-scores, kind="stable"))
        positive = corpus_texts.index(row["pos"][0])
        for negative in row["neg"]:
            cid = corpus_texts.index(negative)
            assert negative not in row["pos"]
            assert 1 <= order.index(cid) < 15  # ranks stay in the window
            assert scaled[cid] <= scaled[positive] - 0.1 + 1e-6


def test_bm25_mining_reads_the_rows_language_and_refuses_mixed_ones(tmp_path: Path) -> None:
    from trivec.training.mining import rows_language

    assert rows_language([{"lang": "ja"}, {"lang": "ja"}], tmp_path) == "ja"
    assert rows_language([{}, {}], tmp_path) == "en"
    with pytest.raises(InputError, match="several languages"):
        rows_language([{"lang": "ja"}, {"lang": "th"}], tmp_path)
    rows = [{"query": "東京の天気", "pos": ["東京は晴れです"], "lang": "ja"},
            {"query": "大阪の天気", "pos": ["大阪は雨です"], "lang": "ja"},
            {"query": "京都の天気", "pos": ["京都は雪です"], "lang": "ja"}]  # fmt: skip
    out = tmp_path / "ja.jsonl"
    mine_hard_negatives(
        None,
        write_jsonl(tmp_path / "ja-in.jsonl", rows),
        out,
        rank_range=(0, 3),
        negatives=1,
        retriever="bm25",
    )
    assert all(r["neg"] and r["neg"][0] not in r["pos"] for r in mined(out))


def test_unknown_retriever_is_refused_and_writes_nothing(
    mining_files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = mining_files
    out = tmp_path / "never.jsonl"
    result = CliRunner().invoke(app, ["mine", "--retriever", "splade", "-d", str(data), "-o", str(out)])
    assert result.exit_code == 2 and "retriever must be one of dense, bm25" in result.output
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- pairs
def test_pairs_from_a_real_corpus_with_titles(tmp_path: Path) -> None:
    source = DATA / "cranfield" / "corpus.jsonl"
    sample = write_jsonl(tmp_path / "corpus.jsonl", [obj for _, obj in islice(iter_jsonl(source), 40)])
    stats = build_pairs(sample, tmp_path / "pairs.jsonl")
    rows = mined(tmp_path / "pairs.jsonl")
    assert stats.written == len(rows) > 30
    assert all(r["neg"] == [] and len(r["pos"]) == 1 and r["query"] for r in rows)
    first = next(obj for _, obj in iter_jsonl(sample) if obj.get("title") and obj.get("text"))
    assert rows[0] == {"query": first["title"].strip(), "pos": [first["text"].strip()], "neg": []}


def test_pairs_skip_rows_without_title_and_duplicates(tmp_path: Path) -> None:
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {"title": "t1", "text": "b1"},
            {"text": "b2"},
            {"title": "t1", "text": "b1"},
            {"title": " ", "text": "b3"},
        ],
    )
    stats = build_pairs(corpus, tmp_path / "p.jsonl")
    assert (stats.written, stats.no_title, stats.duplicates) == (1, 2, 1)
    with pytest.raises(InputError, match="no selected row has both"):
        build_pairs(write_jsonl(tmp_path / "none.jsonl", [{"text": "x"}]), tmp_path / "none-out.jsonl")
    assert not (tmp_path / "none-out.jsonl").exists()
    with pytest.raises(InputError, match=r"c2.jsonl:1: field 'title' must be a string"):
        build_pairs(write_jsonl(tmp_path / "c2.jsonl", [{"title": 5, "text": "x"}]), tmp_path / "o.jsonl")


def test_pairs_score_filter(embedder: Embedder, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [
        {"title": " ".join(rng.choice(WORDS, 3)), "text": " ".join(rng.choice(WORDS, 8))} for _ in range(30)
    ]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    titles = embedder.encode([r["title"] for r in rows], prompt_name="query", max_length=512).dense
    texts = embedder.encode([r["text"] for r in rows], max_length=512).dense
    scores = np.einsum("nd,nd->n", titles, texts)
    threshold = float(np.median(scores))
    stats = build_pairs(corpus, tmp_path / "p.jsonl", filter_model=embedder, min_score=threshold)
    kept = {(r["query"], r["pos"][0]) for r in mined(tmp_path / "p.jsonl")}
    expected = {(r["title"], r["text"]) for r, s in zip(rows, scores, strict=True) if s >= threshold}
    assert kept == expected and stats.filtered == 30 - len(expected)
    with pytest.raises(InputError, match="go together"):
        build_pairs(corpus, tmp_path / "x.jsonl", filter_model=embedder)


def test_pairs_cli(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"title": f"t{i}", "text": f"body {i}"} for i in range(5)])
    out = tmp_path / "p.jsonl"
    result = CliRunner().invoke(
        app, ["data", "pairs", "--corpus", str(corpus), "--output", str(out), "--filter-model", str(TINY_M3),
              "--min-score", "-1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(mined(out)) == 5 and json.loads(out.read_text().splitlines()[0])["query"] == "t0"


def test_pairs_from_labelled_sts_rows_of_one_split(tmp_path: Path) -> None:
    """STS train pairs with gold ≥ 4 as positives (never the test split), counted independently."""
    source = DATA / "sick" / "pairs.jsonl"
    stats = build_pairs(
        source,
        tmp_path / "p.jsonl",
        query_field="sentence1",
        passage_field="sentence2",
        where={"split": "train"},
        at_least={"score": 4.0},
    )
    expected = {
        (o["sentence1"].strip(), o["sentence2"].strip())
        for _, o in iter_jsonl(source)
        if o["split"] == "train" and o["score"] >= 4.0
    }
    assert {(r["query"], r["pos"][0]) for r in mined(tmp_path / "p.jsonl")} == expected
    assert stats.written == len(expected) and stats.skipped == stats.rows - len(expected) - stats.duplicates
    with pytest.raises(InputError, match="'split' must be a number"):
        build_pairs(source, tmp_path / "x.jsonl", at_least={"split": 1.0})


# ---------------------------------------------------------------------------------------------- decontaminate
def test_decontaminate_drops_evaluation_pairs_in_either_order(tmp_path: Path) -> None:
    from trivec.training.decontaminate import decontaminate

    evaluation = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"sentence1": "a cat sits", "sentence2": "a cat is sitting", "split": "test"},
            {"sentence1": "two dogs run", "sentence2": "dogs are running ", "split": "dev"},
            {"sentence1": "kept one", "sentence2": "kept two", "split": "train"},  # not an evaluation row
        ],
    )
    rows = [
        {"query": "a cat is sitting", "pos": ["a cat sits"], "neg": ["x"]},  # reversed order: removed
        {"query": "dogs are running", "pos": ["two dogs run", "other"], "neg": [], "pos_scores": [1.0, 2.0]},
        {"query": "kept one", "pos": ["kept two"], "neg": []},
    ]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    stats = decontaminate(data, tmp_path / "clean.jsonl", [evaluation])
    assert (stats.rows, stats.kept_rows, stats.removed_positives, stats.removed_rows) == (3, 2, 2, 1)
    clean = mined(tmp_path / "clean.jsonl")
    assert clean[0]["pos"] == ["other"] and clean[0]["pos_scores"] == [2.0]
    assert clean[1] == rows[2]
    everything = write_jsonl(tmp_path / "all.jsonl", rows[:1])
    with pytest.raises(InputError, match="every row is an evaluation pair"):
        decontaminate(everything, tmp_path / "none.jsonl", [evaluation])
    assert not (tmp_path / "none.jsonl").exists()


def test_decontaminate_cli_on_real_overlap(tmp_path: Path) -> None:
    """MRPC's train pairs reappear in SemEval STS 2012 (MSRpar): they must go."""
    out = tmp_path / "mrpc.jsonl"
    result = CliRunner().invoke(
        app,
        ["data", "decontaminate", "--data", str(DATA / "mrpc" / "train.jsonl"), "--output", str(out),
         "--against", str(DATA / "semeval-sts" / "pairs.jsonl")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    semeval = {
        frozenset((o["sentence1"].strip(), o["sentence2"].strip()))
        for _, o in iter_jsonl(DATA / "semeval-sts" / "pairs.jsonl")
    }
    kept = mined(out)
    assert 1500 < len(kept) < 2407
    assert not any(frozenset((r["query"].strip(), p.strip())) in semeval for r in kept for p in r["pos"])
