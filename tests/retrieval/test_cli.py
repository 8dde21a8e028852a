"""`trivec index …` and `trivec search` in process (typer's CliRunner): results, JSON, errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec.cli import app
from trivec.retrieval import Document


def test_build_add_search_delete_info(tmp_path: Path, small_docs: list[Document]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in small_docs[:8]),
        encoding="utf-8",
    )
    more = tmp_path / "more"
    more.mkdir()
    (more / "note.md").write_text("hypersonic boundary layer notes", encoding="utf-8")
    ix = str(tmp_path / "ix")
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    run(
        "index",
        "build",
        "--model",
        str(TINY_M3),
        "--corpus",
        str(corpus),
        "--index",
        ix,
        "--max-length",
        "64",
        "--chunk-tokens",
        "48",
        "--chunk-overlap",
        "8",
        "-q",
    )
    run("index", "add", "--corpus", str(more), "--index", ix)
    info = json.loads(run("index", "info", "--index", ix, "--json"))
    assert info["documents"] == 9 and info["chunks"] > 9 and info["modes"] == ["dense", "sparse", "colbert"]
    assert info["settings"]["chunk_tokens"] == 48
    out = run("search", "--index", ix, "hypersonic boundary layer notes", "--top-k", "3", "--json")
    row = json.loads(out)
    assert len(row["hits"]) == 3 and row["hits"][0]["doc_id"] == "note.md"
    assert set(row["hits"][0]["scores"]) == {"dense", "sparse", "colbert"}
    rrf = json.loads(
        run("search", "--index", ix, "boundary layer", "--fusion", "rrf", "--weights", "1,1,0", "--json")
    )
    assert set(rrf["hits"][0]["scores"]) == {"dense", "sparse"}
    zscore = json.loads(run("search", "--index", ix, "boundary layer", "--fusion", "zscore", "--json"))
    assert set(zscore["hits"][0]["scores"]) == {"dense", "sparse", "colbert"}
    refused = CliRunner().invoke(app, ["search", "--index", ix, "boundary layer", "--fusion", "auto"])
    assert (
        refused.exit_code == 2 and "auto fusion needs the model's calibrated score spreads" in refused.output
    )
    text = run("search", "--index", ix, "wing", "-k", "2", "--mode", "colbert")
    assert text.startswith("query: wing\n") and "colbert=" in text  # one mode's own scores: no fusion
    assert run("search", "--index", ix, "wing", "-k", "2").startswith("query: wing  (fused by weighted)\n")
    voted = run("search", "--index", ix, "wing", "-k", "2", "--fusion", "weighted+vote")
    assert voted.startswith("query: wing  (fused by weighted+vote)\n")
    (tmp_path / "q.txt").write_text("wing\n\nboundary layer\n\n", encoding="utf-8")  # blank lines: no queries
    rows = [
        json.loads(line)
        for line in run("search", "--index", ix, "--queries", str(tmp_path / "q.txt"), "--json").splitlines()
    ]
    assert [(r["query_id"], r["query"]) for r in rows] == [("0", "wing"), ("2", "boundary layer")]
    single = CliRunner().invoke(app, ["search", "--index", ix, "wing", "--mode", "dense", "--fusion", "rrf"])
    assert single.exit_code == 0 and "--fusion rrf applies to --mode hybrid" in single.output
    long_query = CliRunner().invoke(app, ["search", "--index", ix, "wing " * 100, "-k", "1"])
    assert (
        long_query.exit_code == 0
        and "1 query(ies) longer than 64 tokens, read on their first 64 only: query 1 (202 tokens)"
        in long_query.output
    )
    run("index", "delete", "note.md", "--index", ix)
    run("index", "compact", "--index", ix)
    human = run("index", "info", "--index", ix)
    assert "documents  8" in human and "segments   1" in human


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["search", "--index", str(tmp_path / "none"), "q"], "no such index directory"),
        (
            ["index", "build", "--corpus", str(tmp_path / "c.jsonl"), "--index", str(tmp_path / "ix")],
            "no such file",
        ),
        (["search", "--index", str(tmp_path), "q"], "not a trivec index"),
        # refused before the index or a model is opened
        (["search", "--index", str(tmp_path / "none"), "q", "--fusion", "mean"], "unknown fusion 'mean'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert message in result.output
    empty = tmp_path / "c.jsonl"
    empty.write_text("\n", encoding="utf-8")
    result = runner.invoke(app, ["index", "build", "--corpus", str(empty), "--index", str(tmp_path / "ix")])
    assert result.exit_code == 2 and "no documents" in result.output


def test_adding_ids_the_index_has_is_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "wings stall"}\n{"id": "b", "text": "boundary layers"}\n')
    ix = str(tmp_path / "ix")
    assert (
        CliRunner().invoke(app, ["index", "build", "-m", str(TINY_M3), "-c", str(corpus), "-x", ix]).exit_code
        == 0
    )
    from trivec.inference import Embedder

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Embedder, "from_pretrained", no_model)
    again = CliRunner().invoke(app, ["index", "add", "-c", str(corpus), "-x", ix])
    assert again.exit_code == 2 and "2 document id(s) already in the index: 'a', 'b'" in again.output


def test_documents_and_texts_cut_at_the_token_limit_are_named(tmp_path: Path) -> None:
    """Without chunking, a document longer than the index's limit is indexed on its first tokens: its tail
    cannot be found. The build says which documents were cut (and `trivec encode` which texts)."""
    corpus = tmp_path / "docs.jsonl"
    rows = [{"id": "short", "text": "a wing"}, {"id": "long", "text": "boundary layer " * 60}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ix = str(tmp_path / "ix")
    build = ["index", "build", "--model", str(TINY_M3), "--corpus", str(corpus), "--index", ix]
    result = CliRunner().invoke(app, [*build, "--max-length", "32"])
    assert result.exit_code == 0, result.output
    assert "1 document(s) longer than 32 tokens, read on their first 32 only: long (" in result.output
    assert "--chunk-tokens" in result.output
    chunked = CliRunner().invoke(app, [*build, "--max-length", "32", "--chunk-tokens", "24", "--overwrite"])
    assert chunked.exit_code == 0 and "longer than" not in chunked.output
    texts = tmp_path / "texts.txt"
    texts.write_text("a wing\n" + "boundary layer " * 60 + "\n", encoding="utf-8")
    encode = ["encode", "-m", str(TINY_M3), "-i", str(texts), "-o", str(tmp_path / "out.jsonl")]
    result = CliRunner().invoke(app, [*encode, "--max-length", "32"])
    assert (
        result.exit_code == 0
        and "1 text(s) longer than 32 tokens, read on their first 32 only: text 2 (" in result.output
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-k", "0"], "--top-k must be a positive integer, got 0"),
        (["--mode", "foo"], "unknown search mode 'foo'"),
        (["--weights", "1,2"], "--weights must be three numbers"),
        (["--candidates", "-1"], "--candidates must be a positive integer, got -1"),
        (["--rerank", "x", "--rerank-depth", "3", "-k", "5"], "--rerank-depth 3 is below --top-k 5"),
    ],
)
def test_bad_search_options_are_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], problem: str
) -> None:
    from trivec.inference import Embedder

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Embedder, "from_pretrained", no_model)
    result = CliRunner().invoke(app, ["search", "-x", str(tmp_path / "no-index"), "wing", *args])
    assert result.exit_code == 2 and problem in result.output
