"""Embedded index: add / delete / update / reopen, transactions, compaction, ANN, storage options, bad input."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.retrieval.conftest import MAX_LENGTH, subset
from trivec import Embedder, EncodeResult
from trivec.errors import InputError, UnsupportedOutputError
from trivec.inference.scoring import dense_scores, hybrid_scores, lexical_scores, maxsim_scores
from trivec.retrieval import (
    CorruptIndexError,
    Document,
    EmbeddedIndex,
    Index,
    IndexLockedError,
    ModelMismatchError,
    NotAnIndexError,
)


def make(path: Path, tiny: Embedder, **options: object) -> EmbeddedIndex:
    index = Index.create(path, tiny, max_length=MAX_LENGTH, **options)
    assert isinstance(index, EmbeddedIndex)
    return index


def filled(
    path: Path, tiny: Embedder, docs: list[Document], encoded: EncodeResult, **options: object
) -> EmbeddedIndex:
    index = make(path, tiny, **options)
    index.add_encoded(docs, encoded)
    return index


def ids(hits: object) -> list[str]:
    return [h.doc_id for h in hits]  # type: ignore[attr-defined]


def test_add_encodes_like_the_embedder_and_search_scores_are_exact(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = make(tmp_path / "ix", tiny, colbert_dtype="float32", colbert_pool_factor=1)
    assert index.add(small_docs[:6]) == 6
    query = "flow over a wing at supersonic speed"
    hits = index.search(query, top_k=6)[0]
    assert sorted(ids(hits)) == sorted(d.id for d in small_docs[:6])
    q = tiny.encode([query], dense=True, sparse=True, colbert=True, prompt_name="query")
    assert q.dense is not None and q.sparse is not None and q.colbert is not None
    p = subset(small_encoded, list(range(6)))
    assert p.dense is not None and p.sparse is not None and p.colbert is not None
    exact = {
        "dense": dense_scores(q.dense[0], p.dense),
        "sparse": lexical_scores(q.sparse[0], p.sparse),
        "colbert": maxsim_scores(q.colbert[0], p.colbert),
    }
    fused = hybrid_scores(exact, {"dense": 0.4, "sparse": 0.2, "colbert": 0.4})
    position = {d.id: i for i, d in enumerate(small_docs[:6])}
    for hit in hits:
        i = position[hit.doc_id]
        for mode in ("dense", "sparse", "colbert"):
            assert hit.scores[mode] == pytest.approx(float(exact[mode][i]), abs=1e-5)
        assert hit.score == pytest.approx(float(fused[i]), abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_hybrid_weighing_colbert_alone_ranks_as_the_colbert_mode(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    """Weights 0 / 0 / 1 leave no first-stage list among the fused modes: the dense top N is re-ranked, as
    `mode="colbert"` does (it returned no hit at all)."""
    index = filled(tmp_path / "ix", tiny, small_docs, small_encoded)
    query = "flow over a wing at supersonic speed"
    for fusion in ("weighted", "rrf", "zscore"):
        hybrid = index.search(query, top_k=5, weights=[0, 0, 1], fusion=fusion)[0]
        colbert = index.search(query, top_k=5, mode="colbert")[0]
        assert len(hybrid) == 5 and ids(hybrid) == ids(colbert), fusion


def test_add_delete_update_reopen(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    path = tmp_path / "ix"
    index = filled(path, tiny, small_docs[:60], subset(small_encoded, list(range(60))))
    index.add_encoded(small_docs[60:100], subset(small_encoded, list(range(60, 100))))
    assert len(index) == 100 and len(index.segments) == 2
    assert index.delete([small_docs[0].id, small_docs[70].id]) == 2
    new = Document(id=small_docs[1].id, text="replaced text about turbulent heat transfer", title="new")
    index.update([new])
    index.close()

    reopened = Index.open(path, tiny)
    assert isinstance(reopened, EmbeddedIndex)
    assert len(reopened) == 98
    assert set(reopened.doc_ids()) == {d.id for d in small_docs[1:100]} - {small_docs[70].id}
    chunk = reopened.get(small_docs[1].id)[0]
    assert (chunk.title, chunk.text) == ("new", new.text)
    with pytest.raises(InputError, match="unknown document id"):
        reopened.get(small_docs[0].id)
    q = small_encoded.dense[[0, 70, 5]]  # type: ignore[index]
    for mode in ("dense", "hybrid"):
        results = reopened.search_vectors(
            EncodeResult(
                dense=q,
                sparse=[small_encoded.sparse[i] for i in (0, 70, 5)],  # type: ignore[index]
                colbert=[small_encoded.colbert[i] for i in (0, 70, 5)],
            ),  # type: ignore[index]
            top_k=100,
            mode=mode,
        )
        for hits in results:
            assert small_docs[0].id not in ids(hits) and small_docs[70].id not in ids(hits)
        assert results[2][0].doc_id == small_docs[5].id  # a document finds itself first
    reopened.compact()
    assert len(reopened.segments) == 1 and reopened.segments[0].rows == 98
    assert len(Index.open(path)) == 98


def test_id_errors_and_empty_input(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = filled(tmp_path / "ix", tiny, small_docs[:10], subset(small_encoded, list(range(10))))
    generation = index.generation
    with pytest.raises(InputError, match="already in the index"):
        index.add_encoded(small_docs[:1], subset(small_encoded, [0]))
    with pytest.raises(InputError, match=r"unknown document id\(s\): 'nope'"):
        index.delete(["nope", small_docs[0].id])
    with pytest.raises(InputError, match="unknown document id"):
        index.update([Document(id="nope", text="x")])
    with pytest.raises(InputError, match="duplicate id"):
        index.add([Document(id="z", text="a"), Document(id="z", text="b")])
    with pytest.raises(InputError, match="no documents"):
        index.add([])
    with pytest.raises(InputError, match="no document ids"):
        index.delete([])
    # nothing above changed the index, and a failed call left no files behind
    assert index.generation == generation and len(index) == 10
    assert len(list((tmp_path / "ix" / "segments").iterdir())) == 1
    assert index.delete(["nope", small_docs[0].id], missing_ok=True) == 1
    assert index.update([Document(id="new", text="fresh")], upsert=True) == 1
    assert len(index) == 10


def test_transaction_commits_once_or_rolls_back(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = filled(tmp_path / "ix", tiny, small_docs[:10], subset(small_encoded, list(range(10))))
    start = index.generation
    with index.transaction():
        index.add_encoded(small_docs[10:20], subset(small_encoded, list(range(10, 20))))
        index.delete([small_docs[0].id])
        assert len(Index.open(tmp_path / "ix")) == 10  # a reader sees the last commit only
    assert index.generation == start + 1 and len(index) == 19
    with pytest.raises(RuntimeError), index.transaction():
        index.add_encoded(small_docs[20:30], subset(small_encoded, list(range(20, 30))))
        raise RuntimeError("abort")
    assert len(index) == 19 and index.generation == start + 1
    assert len(list((tmp_path / "ix" / "segments").iterdir())) == len(index.segments)


def test_segments_merge_past_the_limit(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = make(tmp_path / "ix", tiny, max_segments=3)
    for start in range(0, 50, 10):
        rows = list(range(start, start + 10))
        index.add_encoded(small_docs[start : start + 10], subset(small_encoded, rows))
        assert len(index.segments) <= 3
    assert len(index) == 50
    assert len(list((tmp_path / "ix" / "segments").iterdir())) == len(index.segments)  # merged ones removed
    hits = index.search_vectors(subset(small_encoded, [42]), top_k=1)
    assert hits[0][0].doc_id == small_docs[42].id


def test_readers_keep_working_while_a_writer_commits(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    path = tmp_path / "ix"
    writer = filled(path, tiny, small_docs[:30], subset(small_encoded, list(range(30))), max_segments=1)
    reader = Index.open(path)
    query = subset(small_encoded, [3])
    before = reader.search_vectors(query, top_k=5)
    writer.delete([small_docs[3].id])  # commit 2
    writer.add_encoded(
        small_docs[30:60], subset(small_encoded, list(range(30, 60)))
    )  # merges: old files removed
    after = reader.search_vectors(query, top_k=5)  # re-reads the manifest
    assert before[0][0].doc_id == small_docs[3].id
    assert small_docs[3].id not in ids(after[0]) and len(reader) == 59


def test_a_reader_refreshing_during_commits_ends_on_the_last_one(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    """A reader that keeps searching while another object commits must end up on the last commit: a commit
    landing while the reader loads the previous one, or two commits within one file-system timestamp tick,
    once left it on a stale state until some later commit."""
    path = tmp_path / "ix"
    writer = filled(path, tiny, small_docs[:60], subset(small_encoded, list(range(60))))
    reader = Index.open(path)
    query = subset(small_encoded, [0])
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            reader.search_vectors(query, top_k=5, mode="dense")

    thread = threading.Thread(target=keep_searching)
    thread.start()
    try:
        for i in range(40):
            writer.delete([small_docs[i].id])
    finally:
        stop.set()
        thread.join()
    found = ids(reader.search_vectors(query, top_k=60, mode="dense")[0])
    assert sorted(found) == sorted(d.id for d in small_docs[40:60]) and len(reader) == 20


def test_threads_searching_one_index_object_while_it_commits(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    """A server shares one index object between threads: commits and merges on it must not pull segments
    out from under searches running on other threads."""
    index = filled(
        tmp_path / "ix", tiny, small_docs[:20], subset(small_encoded, list(range(20))), max_segments=2
    )
    errors: list[str] = []
    stop = threading.Event()

    def search(t: int) -> None:
        while not stop.is_set():
            for mode in ("dense", "sparse", "hybrid"):
                try:
                    hits = index.search_vectors(subset(small_encoded, [t]), top_k=30, mode=mode)[0]
                    assert all(h.doc_id is not None for h in hits)
                except Exception as exc:
                    errors.append(f"{mode}: {exc!r}")

    threads = [threading.Thread(target=search, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    try:
        for start in range(20, 120, 10):  # every add merges (max_segments 2), every delete writes a tombstone
            index.add_encoded(
                small_docs[start : start + 10], subset(small_encoded, list(range(start, start + 10)))
            )
            index.delete([small_docs[start - 20].id])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(index) == 120 - 10


def test_single_writer_lock(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    path = tmp_path / "ix"
    first = filled(path, tiny, small_docs[:5], subset(small_encoded, list(range(5))))
    second = EmbeddedIndex.load(path, lock_timeout=0.2)
    with first.transaction():
        first.delete([small_docs[0].id])
        started = time.monotonic()
        with pytest.raises(IndexLockedError, match="being written by another process"):
            second.delete([small_docs[1].id])
        assert time.monotonic() - started < 5
    second.delete([small_docs[1].id])  # the lock is free again, and the second writer sees the first's commit
    assert len(Index.open(path)) == 3


def test_foreign_corrupt_and_mismatched_indexes(
    tmp_path: Path, tiny: Embedder, minilm: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    with pytest.raises(NotAnIndexError, match="no such index directory"):
        Index.open(tmp_path / "absent")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(NotAnIndexError, match="not a trivec index"):
        Index.open(tmp_path / "foreign")
    with pytest.raises(InputError, match="not empty"):
        Index.create(tmp_path / "foreign", tiny)
    for setting, value in [("dense_index", "annoy"), ("hnsw_storage", "int4"), ("colbert_dtype", "bf16")]:
        with pytest.raises(InputError, match=f"{setting} must be .* got '{value}'"):
            Index.create(tmp_path / "bad-settings", tiny, **{setting: value})
        assert not (tmp_path / "bad-settings").exists()

    path = tmp_path / "ix"
    filled(path, tiny, small_docs[:5], subset(small_encoded, list(range(5)))).close()
    with pytest.raises(InputError, match="overwrite"):
        Index.create(path, tiny)
    with pytest.raises(ModelMismatchError, match="built with model"):
        Index.open(path, minilm)
    index = Index.open(path)
    index._embedder = minilm  # a search with another model's vectors is refused by shape
    with pytest.raises(InputError, match="dense vectors of the queries have shape"):
        index.search_vectors(minilm.encode(["x"], prompt_name="query"), mode="dense")
    with pytest.raises(UnsupportedOutputError, match="no sparse vectors"):
        make(tmp_path / "ix2", tiny, sparse=False).search("x", mode="sparse")

    segment = next((path / "segments").iterdir())
    dense = segment / "dense.f32"
    raw = dense.read_bytes()
    dense.write_bytes(raw[:-4])
    with pytest.raises(CorruptIndexError, match="the file is damaged"):
        Index.open(path)
    dense.write_bytes(raw)
    manifest = path / "MANIFEST.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["body"]["documents"] = 99
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="checksum mismatch"):
        Index.open(path)
    manifest.write_text("{not json", encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="manifest is damaged"):
        Index.open(path)


@pytest.mark.parametrize(("kind", "storage"), [("hnsw", "float16"), ("hnsw", "float32"), ("ivf", "float16")])
def test_ann_finds_what_exact_search_finds(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    kind: str,
    storage: str,
) -> None:
    exact = filled(tmp_path / "flat", tiny, small_docs, small_encoded, dense_index="flat")
    ann = filled(
        tmp_path / kind,
        tiny,
        small_docs,
        small_encoded,
        dense_index=kind,
        ivf_nprobe=64,
        hnsw_storage=storage,
    )
    assert ann.info()["segments"][0]["ann"] == kind and ann.info()["bytes"]["dense_ann"] > 0
    queries = subset(small_encoded, list(range(0, 120, 7)))
    for mode in ("dense", "hybrid"):
        a = exact.search_vectors(queries, top_k=10, mode=mode)
        b = ann.search_vectors(queries, top_k=10, mode=mode)
        assert [ids(x) for x in a] == [ids(x) for x in b]
        # scores are the exact float32 ones whatever the graph stores
        for x, y in zip(a, b, strict=True):
            np.testing.assert_allclose([h.score for h in x], [h.score for h in y], rtol=1e-6, atol=1e-6)
    ann.delete([small_docs[0].id])  # deleted rows are filtered inside the graph search
    assert small_docs[0].id not in ids(
        ann.search_vectors(subset(small_encoded, [0]), top_k=5, mode="dense")[0]
    )


def test_colbert_storage_options(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    full = filled(
        tmp_path / "f32", tiny, small_docs, small_encoded, colbert_dtype="float32", colbert_pool_factor=1
    )
    queries = subset(small_encoded, list(range(0, 120, 11)))
    reference = full.search_vectors(queries, top_k=10, mode="colbert")
    sizes = {}
    for name, options in {
        "float16": {"colbert_dtype": "float16", "colbert_pool_factor": 1},
        "int8": {"colbert_dtype": "int8", "colbert_pool_factor": 1},
        "dim32": {"colbert_dim": 32, "colbert_dtype": "float16", "colbert_pool_factor": 1},
    }.items():
        index = filled(tmp_path / name, tiny, small_docs, small_encoded, **options)
        sizes[name] = index.info()["bytes"]["colbert"]
        got = index.search_vectors(queries, top_k=10, mode="colbert")
        overlap = np.mean([len(set(ids(a)) & set(ids(b))) / 10 for a, b in zip(reference, got, strict=True)])
        tolerance = 1e-3 if name == "float16" else 0.05
        errors = [
            abs(x.score - y.score)
            for a, b in zip(reference, got, strict=True)
            for x, y in zip(a, b, strict=True)
            if x.id == y.id
        ]
        assert overlap >= (0.99 if name == "float16" else 0.6), name
        assert np.median(errors) < tolerance, name
        reopened = Index.open(tmp_path / name)
        assert [ids(x) for x in reopened.search_vectors(queries, top_k=10, mode="colbert")] == [
            ids(x) for x in got
        ]
    f32 = full.info()["bytes"]["colbert"]
    assert sizes["float16"] < 0.55 * f32 and sizes["int8"] < 0.4 * f32 and sizes["dim32"] < 0.3 * f32


def test_chunked_index_returns_documents(tmp_path: Path, tiny: Embedder, small_docs: list[Document]) -> None:
    index = make(tmp_path / "ix", tiny, chunk_tokens=24, chunk_overlap=4)
    index.add(small_docs[:4])
    assert index.num_chunks > 4 and len(index) == 4
    hits = index.search(small_docs[2].text[:200], top_k=4)[0]
    assert len(hits) == 4 and len(set(ids(hits))) == 4  # one hit per document
    chunks = index.get(small_docs[2].id)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.id == f"{small_docs[2].id}#{c.position}" for c in chunks)
    index.delete([small_docs[2].id])
    assert index.num_chunks == sum(len(index.get(d.id)) for d in small_docs[:4] if d.id != small_docs[2].id)


def test_dense_only_model_and_explicit_modes(
    tmp_path: Path, minilm: Embedder, small_docs: list[Document]
) -> None:
    index = Index.create(tmp_path / "ix", minilm, max_length=64)
    index.add(small_docs[:5])
    assert index.modes == ["dense"]
    hybrid = index.search("transition of the boundary layer", top_k=3)[0]
    dense = index.search("transition of the boundary layer", top_k=3, mode="dense")[0]
    assert ids(hybrid) == ids(dense) and set(hybrid[0].scores) == {"dense"}
    for mode in ("sparse", "colbert"):
        with pytest.raises(UnsupportedOutputError, match=f"no {mode} vectors"):
            index.search("x", mode=mode)
    with pytest.raises(InputError, match="unknown search mode"):
        index.search("x", mode="bm25")
    with pytest.raises(InputError, match="unknown fusion"):
        index.search("x", fusion="max")
    t = time.perf_counter()
    Index.open(tmp_path / "ix")
    assert time.perf_counter() - t < 0.5


def test_streamed_batches_make_one_commit(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    index = make(tmp_path / "ix", tiny)
    index.add_encoded(small_docs[:5], subset(small_encoded, list(range(5))))
    batches = [
        (small_docs[i : i + 20], subset(small_encoded, list(range(i, i + 20)))) for i in range(5, 65, 20)
    ]
    assert index.add_encoded_batches(batches) == 60
    assert len(index) == 65 and len(index.segments) == 2 and index.generation == 2
    with pytest.raises(InputError, match="appears in two batches"):
        fresh = (small_docs[80:82], subset(small_encoded, [80, 81]))  # not in the index yet
        index.add_encoded_batches([fresh, (small_docs[70:71], subset(small_encoded, [70])), fresh])
    with pytest.raises(InputError, match="already in the index"):
        index.add_encoded_batches([(small_docs[100:101], subset(small_encoded, [100])), batches[1]])
    assert len(index) == 65 and index.generation == 2
    assert len(list((tmp_path / "ix" / "segments").iterdir())) == 2


def test_top_k_past_the_corpus_returns_everything_it_matches(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    """`top_k` as "all": no buffer sized by it (10¹² rows would not fit in memory)."""
    index = filled(tmp_path / "ix", tiny, small_docs[:40], subset(small_encoded, list(range(40))))
    index.add_encoded(small_docs[40:60], subset(small_encoded, list(range(40, 60))))  # two segments
    query = subset(small_encoded, [3])
    for mode in ("dense", "sparse", "hybrid"):
        everything = index.search_vectors(query, top_k=10**12, mode=mode)[0]
        exactly = index.search_vectors(query, top_k=60, mode=mode)[0]
        assert ids(everything) == ids(exactly) and everything[0].doc_id == small_docs[3].id
        if mode != "sparse":  # sparse returns only rows sharing a term with the query
            assert len(everything) == 60
