"""The Qdrant backend (qdrant-client local mode): same results as the embedded index, same semantics."""

from __future__ import annotations

import warnings
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
@pytest.mark.parametrize("fusion", ["weighted", "rrf", "zscore", "auto"])
def test_same_top10_as_the_embedded_index(
    pair: tuple[Index, Index],
    cranfield_queries: list[tuple[str, str]],
    mode: str,
    fusion: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded, qdrant = pair
    # auto: ranges that hold dense and ColBERT spreads and no sparse one (z-scores for every query)
    spreads = {"dense": (0.0, 1.0), "sparse": (0.0, 0.0), "colbert": (0.0, 1.0)}
    monkeypatch.setattr(embedded.embedder.model, "fusion_spreads", spreads)
    texts = [text for _, text in cranfield_queries[:12]]
    a = embedded.search(texts, top_k=10, mode=mode, fusion=fusion)
    b = qdrant.search(texts, top_k=10, mode=mode, fusion=fusion)
    for x, y in zip(a, b, strict=True):
        assert [h.doc_id for h in x] == [h.doc_id for h in y]
        for h, g in zip(x, y, strict=True):  # type: ignore[call-overload]
            assert h.score == pytest.approx(g.score, abs=1e-5)
            assert h.scores == pytest.approx(g.scores, abs=1e-5)
            assert (h.title, h.text, h.fused_by) == (g.title, g.text, g.fused_by)


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


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_dense_quantization_maps_to_qdrant_quantization(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The collection's dense vector carries Qdrant's quantisation (in RAM); a server is asked to re-score
    the first stage (`rescore`, the oversampling of the settings) and to score candidates without codes;
    local mode, which searches exactly, gets no such parameters and finds what an exact embedded index
    finds."""
    from qdrant_client import models

    options = {
        "max_length": MAX_LENGTH,
        "dense_quantization": kind,
        "dense_oversampling": 3.0,
        "colbert_dtype": "float32",
    }
    index = Index.create(tmp_path / "q", tiny, backend="qdrant", **options)  # type: ignore[arg-type]
    assert isinstance(index, QdrantIndex)
    index.add_encoded(small_docs[:40], subset(small_encoded, list(range(40))))
    dense = index.client.get_collection(index.collection).config.params.vectors["dense"]
    config = dense.quantization_config
    if kind == "int8":
        assert isinstance(config, models.ScalarQuantization)
        assert config.scalar.type == models.ScalarType.INT8 and config.scalar.always_ram
    else:
        assert isinstance(config, models.BinaryQuantization)
        assert config.binary.always_ram
        assert config.binary.query_encoding == models.BinaryQuantizationQueryEncoding.SCALAR8BITS
    exact = {k: v for k, v in options.items() if not k.startswith("dense_")}
    embedded = Index.create(tmp_path / "e", tiny, dense_index="flat", **exact)  # type: ignore[arg-type]
    embedded.add_encoded(small_docs[:40], subset(small_encoded, list(range(40))))
    queries = subset(small_encoded, [3, 17, 30])
    for mode in ("dense", "hybrid"):
        a = embedded.search_vectors(queries, top_k=5, mode=mode)
        b = index.search_vectors(queries, top_k=5, mode=mode)
        for x, y in zip(a, b, strict=True):
            assert [h.doc_id for h in x] == [h.doc_id for h in y]
            assert [h.score for h in x] == pytest.approx([h.score for h in y], abs=1e-5)
    index.close()
    embedded.close()

    reopened = Index.open(tmp_path / "q")
    assert isinstance(reopened, QdrantIndex)
    assert reopened.settings.dense_quantization == kind and reopened.local
    calls: list[dict] = []
    for name in ("query_points", "query_batch_points"):
        original = getattr(reopened.client, name)

        def spy(*args: object, _original: object = original, **kwargs: object) -> object:
            calls.append({**kwargs, "args": args})
            return _original(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(reopened.client, name, spy)
    reopened.search_vectors(queries, top_k=5, mode="hybrid")
    assert calls and all(c.get("search_params") is None for c in calls)
    assert all(p.params is None for c in calls for p in c.get("prefetch") or [])
    calls.clear()
    reopened.local = False  # as on a server: the parameters are sent (local mode ignores them, warning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hits = reopened.search_vectors(subset(small_encoded, [5]), top_k=3, mode="dense")[0]
        reopened.search_vectors(subset(small_encoded, [5]), top_k=3, mode="hybrid")
    assert hits[0].doc_id == small_docs[5].id
    first_stage = calls[0]["search_params"].quantization
    assert first_stage.rescore is True and first_stage.oversampling == 3.0
    (prefetch_dense, *_) = calls[1]["prefetch"]
    assert prefetch_dense.using == "dense" and prefetch_dense.params.quantization.rescore is True
    requests = {r.using: r for r in calls[2]["args"][1]}
    assert requests["dense"].params.quantization.ignore is True and requests["sparse"].params is None
    reopened.close()
