"""Ingestion holds one encoded batch at a time: a batch's vectors are let go once written, before the next
batch is encoded (docs/scale.md, memory while building)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.retrieval import Document, Index, base


def test_a_batch_is_let_go_before_the_next_is_encoded(
    tiny: Embedder, small_docs: list[Document], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(base, "ENCODE_BATCH", 40)
    results: list[weakref.ref[Any]] = []
    alive_at_encode: list[int] = []
    encode = tiny.encode

    def tracked(*args: Any, **kwargs: Any) -> Any:
        alive_at_encode.append(sum(ref() is not None for ref in results))
        result = encode(*args, **kwargs)
        results.append(weakref.ref(result))
        return result

    monkeypatch.setattr(tiny, "encode", tracked)
    with Index.build(tmp_path / "index", small_docs, tiny, max_length=MAX_LENGTH) as index:
        assert index.info()["chunks"] == len(small_docs)
    assert alive_at_encode == [0, 0, 0]
