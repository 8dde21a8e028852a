"""Retrieval fixtures: real documents from ../shared/data and their tiny-m3 vectors, encoded once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DATA
from trivec import Embedder, EncodeResult
from trivec.retrieval import Document, read_corpus

CRANFIELD = DATA / "cranfield"
MAX_LENGTH = 64  # keeps tiny-m3 encoding fast; the index records it and encodes new documents the same way


@pytest.fixture(scope="session")
def cranfield_docs() -> list[Document]:
    if not CRANFIELD.is_dir():
        pytest.skip(f"{CRANFIELD} not found (set TRIVEC_SHARED)")
    return read_corpus(CRANFIELD / "corpus.jsonl")


@pytest.fixture(scope="session")
def cranfield_queries() -> list[tuple[str, str]]:
    rows = [
        json.loads(line) for line in (CRANFIELD / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [(row["id"], row["text"]) for row in rows if row]


@pytest.fixture(scope="session")
def small_docs(cranfield_docs: list[Document]) -> list[Document]:
    """120 real Cranfield abstracts."""
    return cranfield_docs[:120]


@pytest.fixture(scope="session")
def small_encoded(tiny: Embedder, small_docs: list[Document]) -> EncodeResult:
    """tiny-m3 dense + sparse + ColBERT vectors of `small_docs` (as the index encodes them)."""
    return tiny.encode(
        [f"{d.title or ''} {d.text}".strip() for d in small_docs],
        dense=True,
        sparse=True,
        colbert=True,
        max_length=MAX_LENGTH,
    )


@pytest.fixture
def fit_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Sets, for one test, the stored tokens an index's residual codebook waits for (`FIT_SAMPLE`)."""
    import trivec.retrieval.colbert as colbert

    return lambda tokens: monkeypatch.setattr(colbert, "FIT_SAMPLE", tokens)


def subset(encoded: EncodeResult, rows: list[int]) -> EncodeResult:
    """The rows `rows` of an `EncodeResult`."""
    assert encoded.dense is not None and encoded.sparse is not None and encoded.colbert is not None
    return EncodeResult(
        dense=encoded.dense[rows],
        sparse=[encoded.sparse[i] for i in rows],
        colbert=[encoded.colbert[i] for i in rows],
        num_tokens=[encoded.num_tokens[i] for i in rows],
    )


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
