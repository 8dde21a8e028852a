"""Index prompts: documents get the `document` prompt, queries the `query` prompt, both recorded with the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3, TINY_PROMPTS
from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference.scoring import dense_scores
from trivec.retrieval import Document, Index

QUERY = "flow over a wing at supersonic speed"


def dense_hits(index: Index, query: str, **options: object) -> dict[str, float]:
    hits = index.search(query, top_k=10, mode="dense", **options)[0]  # type: ignore[arg-type]
    return {h.doc_id: h.score for h in hits}


def expected(
    embedder: Embedder, docs: list[Document], query: str, q_prefix: str, d_prefix: str
) -> dict[str, float]:
    """Dense scores of the texts with the prefixes written out by hand (no prompt from the model)."""
    texts = [d_prefix + f"{d.title or ''} {d.text}".strip() for d in docs]
    p = embedder.encode(texts, prompt="", max_length=MAX_LENGTH).dense
    q = embedder.encode([q_prefix + query], prompt="", max_length=MAX_LENGTH).dense
    assert p is not None and q is not None
    return {d.id: float(s) for d, s in zip(docs, dense_scores(q[0], p), strict=True)}


def assert_scores(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)


def test_model_prompts_are_applied_and_recorded(
    tmp_path: Path, tiny_prompted_dir: Path, small_docs: list[Document]
) -> None:
    docs = small_docs[:6]
    prompted = Embedder.from_pretrained(tiny_prompted_dir, device="cpu")
    with Index.create(tmp_path / "ix", prompted, max_length=MAX_LENGTH) as index:
        index.add(docs)
        assert index.settings.prompts == TINY_PROMPTS
        assert index.info()["settings"]["prompts"] == TINY_PROMPTS
        assert_scores(dense_hits(index, QUERY), expected(prompted, docs, QUERY, "query: ", "passage: "))
        # an explicit prompt replaces the recorded one for that search
        assert_scores(dense_hits(index, QUERY, prompt=""), expected(prompted, docs, QUERY, "", "passage: "))


def test_recorded_prompts_win_over_the_model_they_are_opened_with(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    docs = small_docs[:6]
    path = tmp_path / "ix"
    with Index.create(
        path, tiny, max_length=MAX_LENGTH, prompts={"query": "q: ", "document": "d: "}
    ) as index:
        index.add(docs[:3])
    overridden = Embedder(tiny.model, device="cpu", prompts={"query": "other: ", "document": "other: "})
    with Index.open(path, overridden) as index:  # prompts are no part of the model fingerprint
        index.add(docs[3:])  # new documents get the recorded document prompt too
        assert index.prompt("query") == "q: " and index.prompt("document") == "d: "
        assert_scores(dense_hits(index, QUERY), expected(tiny, docs, QUERY, "q: ", "d: "))
    with Index.open(path) as index:
        assert_scores(dense_hits(index, QUERY), expected(tiny, docs, QUERY, "q: ", "d: "))
        index.settings.prompts = None  # an index built before prompts were recorded: the model's apply
        assert index.prompt("query") == "" and index.prompt("query", "x: ") == "x: "
    with Index.create(tmp_path / "partial", tiny, prompts={"document": "d: "}) as index:
        assert index.settings.prompts == {"query": "", "document": "d: "}
    with pytest.raises(InputError, match="per role"):
        Index.create(tmp_path / "bad", tiny, prompts={"sts": "s: "})


def test_cli_build_records_prompts_and_search_uses_them(tmp_path: Path, small_docs: list[Document]) -> None:
    docs = small_docs[:5]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in docs),
        encoding="utf-8",
    )
    ix = str(tmp_path / "ix")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    run("index", "build", "-m", str(TINY_M3), "-c", str(corpus), "-x", ix, "--max-length", str(MAX_LENGTH),
        "--query-prompt", "q: ", "--document-prompt", "d: ", "-q")  # fmt: skip
    assert "prompts    query 'q: ', document 'd: '" in run("index", "info", "-x", ix)
    tiny = Embedder.from_pretrained(TINY_M3, device="cpu")
    for flags, prefix in (([], "q: "), (["--query-prompt", "Q: "], "Q: ")):
        row = json.loads(run("search", "-x", ix, QUERY, "--mode", "dense", "--json", *flags))
        got = {h["doc_id"]: h["score"] for h in row["hits"]}
        assert_scores(got, expected(tiny, docs, QUERY, prefix, "d: "))
