"""The Qdrant backend (qdrant-client local mode): same results as the embedded index, same semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.retrieval.conftest import MAX_LENGTH, subset
from trivec import Embedder, EncodeResult
from trivec.errors import InputError
from trivec.retrieval import Document, Index, ModelMismatchError
from trivec.retrieval.qdrant import QdrantIndex


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
) -> tuple[Index, Index]:
    root = tmp_path_factory.mktemp("qdrant")
    embedded = Index.create(root / "embedded", tiny, max_length=MAX_LENGTH, colbert_dtype="float32")
    embedded.add_encoded(small_docs, small_encoded)
    qdrant = Index.create(root / "qdrant", tiny, backend="qdrant", max_length=MAX_LENGTH)
    qdrant.add_encoded(small_docs, small_encoded)
    return embedded, qdrant


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert", "hybrid"])
@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_same_top10_as_the_embedded_index(
    pair: tuple[Index, Index], cranfield_queries: list[tuple[str, str]], mode: str, fusion: str
) -> None:
    embedded, qdrant = pair
    texts = [text for _, text in cranfield_queries[:12]]
    a = embedded.search(texts, top_k=10, mode=mode, fusion=fusion)
    b = qdrant.search(texts, top_k=10, mode=mode, fusion=fusion)
    for x, y in zip(a, b, strict=True):
        assert [h.doc_id for h in x] == [h.doc_id for h in y]
        for h, g in zip(x, y, strict=True):  # type: ignore[call-overload]
            assert h.score == pytest.approx(g.score, abs=1e-5)
            assert h.scores == pytest.approx(g.scores, abs=1e-5)
            assert (h.title, h.text) == (g.title, g.text)


def test_qdrant_add_delete_update_reopen(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    path = tmp_path / "q"
    index = Index.create(path, tiny, backend="qdrant", max_length=MAX_LENGTH)
    assert isinstance(index, QdrantIndex)
    index.add_encoded(small_docs[:20], subset(small_encoded, list(range(20))))
    with pytest.raises(InputError, match="already in the index"):
        index.add_encoded(small_docs[:1], subset(small_encoded, [0]))
    with pytest.raises(InputError, match="unknown document id"):
        index.delete(["nope"])
    assert index.delete([small_docs[0].id]) == 1
    index.update([Document(id=small_docs[1].id, text="replaced", title="new")])
    index.close()
    with pytest.raises(ModelMismatchError):
        Index.open(path, Embedder.from_pretrained("minilm-m3", device="cpu"))
    reopened = Index.open(path)
    assert isinstance(reopened, QdrantIndex) and len(reopened) == 19
    assert reopened.get(small_docs[1].id)[0].text == "replaced"
    assert set(reopened.doc_ids()) == {d.id for d in small_docs[1:20]}
    hits = reopened.search_vectors(subset(small_encoded, [5]), top_k=3, mode="dense")[0]
    assert hits[0].doc_id == small_docs[5].id
    reopened.close()


def test_qdrant_chunked_documents(tmp_path: Path, tiny: Embedder, small_docs: list[Document]) -> None:
    index = Index.create(tmp_path / "q", tiny, backend="qdrant", max_length=MAX_LENGTH, chunk_tokens=24)
    index.add(small_docs[:3])
    chunks = index.get(small_docs[0].id)
    assert len(chunks) > 1 and chunks[0].id == f"{small_docs[0].id}#0"
    with pytest.raises(InputError, match="already in the index"):
        index.add(small_docs[:1])
    hits = index.search(small_docs[1].text[:150], top_k=3)[0]
    assert len({h.doc_id for h in hits}) == len(hits) == 3
    index.delete([small_docs[0].id])
    assert len(index) == 2 and small_docs[0].id not in index.doc_ids()
