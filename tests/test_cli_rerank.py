"""`trivec rerank`, `trivec search --rerank` and `trivec serve --reranker`, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import TINY_M3, TINY_RERANKER
from tests.test_cli import trivec, trivec_in_process

REFERENCE = json.loads((TINY_RERANKER / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rerank") / "pairs.jsonl"
    path.write_text(
        "".join(
            json.dumps({"query": p["query"], "passage": p["passage"]}, ensure_ascii=False) + "\n"
            for p in REFERENCE["pairs"]
        ),
        encoding="utf-8",
    )
    return path


def _scores(stdout: str) -> list[float]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    assert all(set(row) == {"score"} for row in rows)
    return [row["score"] for row in rows]


def test_rerank_command_matches_flagreranker(pairs_file: Path) -> None:
    done = trivec("rerank", "--model", str(TINY_RERANKER), "--pairs", str(pairs_file))
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(_scores(done.stdout), REFERENCE["cases"]["raw_max512"]["scores"], atol=2e-6)


@pytest.mark.parametrize(
    ("case", "options"),
    [
        ("sigmoid_max512", ["--normalize"]),
        ("raw_max64_query16", ["--max-length", "64", "--query-max-length", "16"]),
        ("raw_instruction", ["--instruction", "Given a query, find the passage: "]),
    ],
)
def test_rerank_options(pairs_file: Path, case: str, options: list[str]) -> None:
    done = trivec_in_process("rerank", "-m", str(TINY_RERANKER), "-p", str(pairs_file), *options)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(_scores(done.stdout), REFERENCE["cases"][case]["scores"], atol=2e-6)


@pytest.mark.parametrize(
    ("rows", "options", "needle"),
    [
        ('{"query": "q"}\n', [], "pairs.jsonl:1: field 'passage' is missing"),
        ('{"query": "q", "passage": 3}\n', [], "field 'passage' is a number, not a string"),
        (
            '{"query": "q", "passage": "p"}\n',
            ["--max-length", "64", "--query-max-length", "61"],
            "leaves no room",
        ),
        ('{"query": "q", "passage": "p"}\n', ["--max-length", "3"], "--max-length must be an integer ≥ 4"),
        ('{"query": "q", "passage": "p"}\n', ["--max-length", "9000"], "exceeds the model's limit of 8192"),
    ],
)
def test_rerank_bad_input_is_one_line(tmp_path: Path, rows: str, options: list[str], needle: str) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(rows, encoding="utf-8")
    done = trivec_in_process("rerank", "-m", str(TINY_RERANKER), "-p", str(path), *options)
    assert done.returncode == 2 and done.stdout == ""
    assert needle in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_rerank_refuses_an_embedding_model(pairs_file: Path) -> None:
    done = trivec_in_process("rerank", "-m", str(TINY_M3), "-p", str(pairs_file))
    assert done.returncode == 2 and "is not a reranker" in done.stderr and done.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------- search
@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trivec import Embedder
    from trivec.retrieval import Index

    corpus = [{"id": p["id"], "text": p["passage"]} for p in REFERENCE["pairs"] if p["passage"]]
    unique = list({row["text"]: row for row in corpus}.values())
    path = tmp_path_factory.mktemp("ix") / "ix"
    with Index.create(path, Embedder.from_pretrained(TINY_M3, device="cpu"), max_length=64) as index:
        index.add(unique)
    return path


def test_search_with_rerank(index_dir: Path) -> None:
    done = trivec_in_process(
        "search", "--index", str(index_dir), "What is BGE M3?", "--top-k", "3", "--json",
        "--rerank", str(TINY_RERANKER), "--rerank-depth", "5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hits: list[dict[str, Any]] = json.loads(done.stdout)["hits"]
    assert len(hits) == 3
    assert all(
        {"retrieval", "rerank"} <= set(h["scores"]) and h["score"] == h["scores"]["rerank"] for h in hits
    )
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (
            ["--top-k", "10", "--rerank", str(TINY_RERANKER), "--rerank-depth", "5"],
            "--rerank-depth 5 is below --top-k 10",
        ),
        (["--rerank-depth", "5"], "--rerank-depth applies with --rerank"),
        (["--rerank", str(TINY_M3)], "is not a reranker"),
    ],
)
def test_search_rerank_errors(index_dir: Path, options: list[str], needle: str) -> None:
    done = trivec_in_process("search", "--index", str(index_dir), "query", *options)
    errors = [line for line in done.stderr.splitlines() if line.startswith("trivec: error:")]
    assert done.returncode == 2 and len(errors) == 1 and needle in errors[0], done.stderr
    assert done.stdout == ""


# ----------------------------------------------------------------------------------------- serve
def test_build_app_loads_the_reranker() -> None:
    from trivec.serving import ServerConfig, ServerThread
    from trivec.serving.server import build_app

    app = build_app(ServerConfig(model=str(TINY_M3), reranker=str(TINY_RERANKER), device="cpu"))
    with ServerThread(app) as running:
        body = httpx.post(f"{running.url}/v1/rerank", json={"query": "q", "documents": ["a", "b"]}).json()
        assert sorted(r["index"] for r in body["results"]) == [0, 1]
        assert httpx.get(f"{running.url}/health").json()["reranker"]["model"] == "tiny-reranker"


def test_serve_help_names_the_reranker_option() -> None:
    done = trivec_in_process("serve", "--help")
    assert "--reranker" in done.stdout
