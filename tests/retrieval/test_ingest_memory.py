"""Ingestion holds one encoded batch at a time: a batch's vectors are let go once written, before the next
batch is encoded, and the heap is trimmed after each forward pass; ColBERT rows are coded as each forward pass
gives them, with the same segment files as rows coded when written (docs/scale.md, memory while building)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.retrieval import Document, Index, IndexSettings, base
from trivec.retrieval.embedded import EmbeddedIndex
from trivec.retrieval.manifest import read_manifest


@pytest.mark.parametrize("dtype", ["int4", "residual2"])
def test_a_batch_is_let_go_before_the_next_is_encoded(
    tiny: Embedder, small_docs: list[Document], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dtype: str
) -> None:
    """Residual codes stage the first batch (it fills the codebook's sample here), then code the others; each
    batch is let go once it is written."""
    import trivec.retrieval.colbert as colbert

    monkeypatch.setattr(base, "ENCODE_BATCH", 40)
    monkeypatch.setattr(colbert, "FIT_SAMPLE", 300)
    results: list[weakref.ref[Any]] = []
    alive_at_encode: list[int] = []
    trims: list[bool] = []
    encode = tiny.encode

    def tracked(*args: Any, **kwargs: Any) -> Any:
        alive_at_encode.append(sum(ref() is not None for ref in results))
        trims.append(kwargs.get("trim_heap", False))
        result = encode(*args, **kwargs)
        results.append(weakref.ref(result))
        return result

    monkeypatch.setattr(tiny, "encode", tracked)
    with Index.build(
        tmp_path / "index", small_docs, tiny, max_length=MAX_LENGTH, colbert_dtype=dtype
    ) as index:
        assert index.info()["chunks"] == len(small_docs)
        assert (index.info()["colbert_residual"] or {}).get("staged_tokens", 0) == 0
    assert alive_at_encode == [0, 0, 0]
    assert trims == [True, True, True]  # freed heap given back after each forward pass


def _segment_files(index_dir: Path) -> dict[str, bytes]:
    """Every segment file's bytes by segment position (in the manifest) and name (segment directories are
    named afresh per build)."""
    segments = read_manifest(index_dir)["segments"]
    files = {
        f"{i}/{path.name}": path.read_bytes()
        for i, record in enumerate(segments)
        for path in sorted((index_dir / "segments" / record["name"]).iterdir())
    }
    assert files
    return files


@pytest.mark.parametrize(
    "settings",
    [
        IndexSettings(),
        IndexSettings(colbert_dtype="int8", colbert_pool_factor=1),
        IndexSettings(colbert_dtype="binary"),
        IndexSettings(colbert_dim=16),  # a projection fitted from the first batch: coded when written
        IndexSettings(
            colbert_dtype="residual2", colbert_pool_factor=2
        ),  # staged as float16, coded once fitted
    ],
    ids=["int4-pooled", "int8", "binary", "projected", "residual"],
)
def test_colbert_codes_made_while_encoding_give_the_same_segment(
    tiny: Embedder,
    small_docs: list[Document],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings: IndexSettings,
) -> None:
    import trivec.retrieval.colbert as colbert

    monkeypatch.setattr(base, "ENCODE_BATCH", 50)
    monkeypatch.setattr(colbert, "FIT_SAMPLE", 1000)  # filled within the second batch
    results: list[Any] = []
    encode = tiny.encode

    def tracked(*args: Any, **kwargs: Any) -> Any:
        results.append(encode(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(tiny, "encode", tracked)
    build = dict(model=tiny, settings=settings, max_length=MAX_LENGTH)
    with Index.build(tmp_path / "coded", small_docs, **build):
        pass
    if settings.colbert_dtype.startswith("residual"):  # fitted within the build, the staged rows coded
        body = read_manifest(tmp_path / "coded")
        assert body["residual"] and not any(r.get("colbert_staged") for r in body["segments"])
    coded_while_encoding = settings.colbert_dim is None
    assert [r.colbert is None for r in results] == [coded_while_encoding] * 3
    assert [r.colbert_codes is not None for r in results] == [coded_while_encoding] * 3
    monkeypatch.setattr(EmbeddedIndex, "_colbert_coder", lambda self: None)  # rows held, coded when written
    with Index.build(tmp_path / "rows", small_docs, **build):
        pass
    assert results[-1].colbert is not None
    assert _segment_files(tmp_path / "coded") == _segment_files(tmp_path / "rows")
