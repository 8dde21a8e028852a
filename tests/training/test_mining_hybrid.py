"""`trivec mine --retriever hybrid`: dense and BM25 fused; negatives come from the fused rank window, are
never positives, and keep the margin on the fused scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.training.test_tools import mined
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference import Embedder
from trivec.training.mining import HYBRID_DENSE_WEIGHT, mine_hard_negatives


def fused(embedder: Embedder, query: str, texts: list[str]) -> np.ndarray:
    from trivec.evaluation.bm25 import Bm25Index

    q = embedder.encode([query], prompt_name="query", max_length=512).dense[0]
    dense = embedder.encode(texts, prompt_name="document", max_length=512).dense @ q
    lexical = Bm25Index(texts, "en").scores(query)
    lexical = lexical / lexical.max() if lexical.max() > 0 else lexical
    return HYBRID_DENSE_WEIGHT * dense + (1 - HYBRID_DENSE_WEIGHT) * lexical


def test_hybrid_negatives_come_from_the_fused_window_below_the_margin(
    embedder: Embedder,
    mining_files: tuple[Path, Path],
    corpus_texts: list[str],
    tmp_path: Path,
) -> None:
    data, corpus = mining_files
    out = tmp_path / "hybrid.jsonl"
    stats = mine_hard_negatives(
        embedder, data, out, corpus=corpus, rank_range=(2, 20), negatives=4, margin=0.05, fill=False,
        retriever="hybrid",
    )  # fmt: skip
    rows = mined(out)
    assert stats.rows == len(rows) == 8
    for row in rows:
        scores = fused(embedder, row["query"], corpus_texts)
        order = list(np.argsort(-scores, kind="stable"))
        positive = corpus_texts.index(row["pos"][0])
        assert "neg_scores" not in row and row["prompt"] == "P: "
        for negative in row["neg"]:
            cid = corpus_texts.index(negative)
            assert negative not in row["pos"]
            assert 2 <= order.index(cid) < 20  # ranks stay in the window
            assert scores[cid] <= scores[positive] - 0.05 + 1e-5


def test_hybrid_is_seeded_and_differs_from_either_retriever(
    embedder: Embedder,
    mining_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    data, corpus = mining_files
    runs = {}
    for name, retriever, model in (
        ("h1", "hybrid", embedder), ("h2", "hybrid", embedder), ("d", "dense", embedder), ("b", "bm25", None),
    ):  # fmt: skip
        mine_hard_negatives(model, data, tmp_path / f"{name}.jsonl", corpus=corpus, rank_range=(0, 10),
                            negatives=3, retriever=retriever)  # fmt: skip
        runs[name] = [row["neg"] for row in mined(tmp_path / f"{name}.jsonl")]
    assert runs["h1"] == runs["h2"]
    assert runs["h1"] != runs["d"] or runs["h1"] != runs["b"]


def test_hybrid_needs_a_model(mining_files: tuple[Path, Path], tmp_path: Path) -> None:
    data, corpus = mining_files
    with pytest.raises(InputError, match="hybrid mining needs a dense model"):
        mine_hard_negatives(None, data, tmp_path / "x.jsonl", corpus=corpus, retriever="hybrid")
    assert not (tmp_path / "x.jsonl").exists()


def test_mine_cli_hybrid(mining_files: tuple[Path, Path], tmp_path: Path) -> None:
    data, corpus = mining_files
    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(
        app,
        ["mine", "--retriever", "hybrid", "-m", str(TINY_M3), "-d", str(data), "--corpus", str(corpus), "-o",
         str(out), "--range", "0-10", "--negatives", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(len(row["neg"]) == 3 and not set(row["neg"]) & set(row["pos"]) for row in mined(out))
