"""Dense first stage over int8 / binary codes with exact re-scoring (`dense_quantization`, issue "Scale" 2):
recall against exact search, exact scores, deletions, merges, reopening, integrity, settings and the CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.retrieval.test_integrity import corrupt
from trivec import Embedder, EncodeResult
from trivec.cli import app
from trivec.errors import InputError
from trivec.retrieval import CorruptIndexError, Document, EmbeddedIndex, Index, segment
from trivec.retrieval import dense_codes as dc
from trivec.retrieval.manifest import read_manifest, write_manifest
from trivec.retrieval.settings import IndexSettings

DIM, ROWS, QUERIES = 384, 4000, 60


def structured(rows: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors as embeddings are: clusters, a decaying spectrum in a random basis (no dimension
    singled out), a common offset; queries are documents moved by noise about as long as themselves."""
    rng = np.random.default_rng(seed)
    spectrum = (1.0 / np.sqrt(np.arange(1, DIM + 1))).astype(np.float32)
    basis, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    centers = rng.standard_normal((max(8, rows // 100), DIM)).astype(np.float32) * spectrum
    noise = 0.6 * rng.standard_normal((rows, DIM)).astype(np.float32) * spectrum
    x = (centers[rng.integers(0, centers.shape[0], rows)] + noise) @ basis
    x = x + 0.02 * rng.standard_normal(DIM)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(rows, queries, replace=False)] + 0.05 * rng.standard_normal((queries, DIM))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    return structured(ROWS, QUERIES, seed=0)


def docs(start: int, stop: int) -> list[Document]:
    return [Document(id=f"d{i}", text=f"document {i}") for i in range(start, stop)]


def build(path: Path, model: Embedder, x: np.ndarray, **options: object) -> EmbeddedIndex:
    index = Index.create(path, model, **options)
    assert isinstance(index, EmbeddedIndex)
    index.add_encoded(docs(0, x.shape[0]), EncodeResult(dense=x))
    return index


def row(hit: object) -> int:
    return int(hit.doc_id[1:])  # type: ignore[attr-defined]


def exact_top(x: np.ndarray, q: np.ndarray, k: int, alive: np.ndarray | None = None) -> list[set[int]]:
    scores = np.einsum("nd,qd->qn", x.astype(np.float64), q.astype(np.float64))
    if alive is not None:
        scores[:, ~alive] = -np.inf
    return [set(np.argsort(-s, kind="stable")[:k].tolist()) for s in scores]


def recall(results: list[list[object]], truth: list[set[int]]) -> float:
    k = len(next(iter(truth)))
    return float(
        np.mean([len({row(h) for h in hits} & t) / k for hits, t in zip(results, truth, strict=True)])
    )


# ---------------------------------------------------------------------- the codes and kernels
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 40), dim=st.integers(1, 70), queries=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_binary_codes_pack_the_signs_and_score_as_their_pm1_vectors(
    rows: int, dim: int, queries: int, seed: int
) -> None:
    """Bits are the signs, most significant first, padded with zeros to whole bytes; the table kernel's
    score is the query's inner product with the ±1 vector, whatever the padding."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    q = rng.standard_normal((queries, dim)).astype(np.float32)
    codes = dc.encode("binary", x, None)
    assert codes.shape == (rows, dc.code_width("binary", dim)) and codes.dtype == np.uint8
    signs = dc.decode("binary", codes, None, dim)
    np.testing.assert_array_equal(signs, np.where(x > 0, 1.0, -1.0))
    bits = np.unpackbits(codes, axis=1)
    assert not bits[:, dim:].any()  # padding bits are zeros
    got = dc.approximate_scores("binary", codes, None, q)
    np.testing.assert_allclose(got, signs @ q.T, rtol=1e-5, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), dim=st.integers(1, 70), queries=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_int8_codes_are_within_half_a_step_and_score_as_their_decoded_vectors(
    rows: int, dim: int, queries: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, dim)) * rng.uniform(0.01, 3, dim) + rng.uniform(-1, 1, dim)).astype(
        np.float32
    )
    q = rng.standard_normal((queries, dim)).astype(np.float32)
    scale = dc.fit("int8", x)
    assert scale is not None and scale.shape == (2, dim) and (scale[1] > 0).all()
    codes = dc.encode("int8", x, scale)
    assert codes.shape == (rows, dim) and codes.dtype == np.uint8
    decoded = dc.decode("int8", codes, scale, dim)
    assert (np.abs(decoded - x) <= 0.5 * scale[1] * (1 + 1e-4) + 1e-6).all()
    assert (codes.min(axis=0) == 0).all()  # each dimension's minimum is code 0, its maximum 255
    assert (codes.max(axis=0)[np.ptp(x, axis=0) > 0] == 255).all()
    got = dc.approximate_scores("int8", codes, scale, q)
    np.testing.assert_allclose(got, decoded @ q.T, rtol=1e-4, atol=1e-3)


def test_fit_reads_a_file_in_chunks_as_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _ = structured(500, 1, seed=3)
    whole = dc.fit("int8", x)
    monkeypatch.setattr(dc, "CHUNK_ROWS", 64)
    assert whole is not None and np.array_equal(dc.fit("int8", x), whole)


def test_rescored_rows() -> None:
    assert dc.rescored_rows(10, 1.0) == 10 and dc.rescored_rows(100, 1.1) == 110
    assert dc.rescored_rows(10, 2.5) == 25 and dc.rescored_rows(7, 8.0) == 56


# ---------------------------------------------------------------------- searching
@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> dict[str, Path]:
    """The same 4,000 × 384 vectors as float32 flat, int8 and binary indexes (default oversampling)."""
    x, _ = vectors
    root = tmp_path_factory.mktemp("dense-codes")
    out = {}
    for kind in ("none", "int8", "binary"):
        options = {} if kind == "none" else {"dense_quantization": kind}
        build(root / kind, minilm, x, dense_index="flat", **options).close()
        out[kind] = root / kind
    return out


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_recall_against_exact_search_and_exact_scores(
    built: dict[str, Path], minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray], kind: str
) -> None:
    """recall@10 and @100 against exact flat search at the default oversampling ≥ 0.99 (measured: 1.0 for
    both kinds and k, seeds 0–2; binary at oversampling 4 gives 0.93–0.96 @10, int8 at 1 0.98–0.99); every
    returned score is the exact float32 inner product of its row (the number `dense_scores` gives)."""
    x, q = vectors
    with Index.open(built[kind], minilm) as index:
        assert isinstance(index, EmbeddedIndex)
        assert index.settings.oversampling == dc.DEFAULT_OVERSAMPLING[kind]
        for k in (10, 100):
            results = index.search_vectors(EncodeResult(dense=q), top_k=k, mode="dense")
            got = recall(results, exact_top(x, q, k))
            assert got >= 0.99, (kind, k, got)
            for j, hits in enumerate(results):
                rows = np.array([row(h) for h in hits])
                want = np.einsum("ij,j->i", x[rows], q[j])
                assert [h.score for h in hits] == want.astype(np.float64).tolist()
                assert [h.scores["dense"] for h in hits] == [h.score for h in hits]
                assert (np.diff(want) <= 0).all()


def test_codes_beat_no_rescoring_and_more_oversampling_finds_more(
    built: dict[str, Path], minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    """Oversampling is what the recall rests on: 1 (no extra rows) finds less than the default for binary,
    and the default finds at least what a smaller one does."""
    x, q = vectors
    truth = exact_top(x, q, 10)
    with Index.open(built["binary"], minilm) as index:
        found = {}
        for over in (1.0, 2.0, 8.0):
            index.settings.dense_oversampling = over
            found[over] = recall(index.search_vectors(EncodeResult(dense=q), top_k=10, mode="dense"), truth)
        assert found[1.0] < found[2.0] <= found[8.0], found


def test_deleted_rows_are_never_returned_and_upserts_are_found(
    tmp_path: Path, built: dict[str, Path], minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = vectors
    for kind in ("int8", "binary"):
        path = tmp_path / kind
        shutil.copytree(built[kind], path)
        with Index.open(path, minilm) as index:
            gone = sorted({int(np.argmax(x @ q[j])) for j in range(QUERIES)})  # every query's best row
            index.delete([f"d{r}" for r in gone])
            alive = np.ones(ROWS, bool)
            alive[gone] = False
            results = index.search_vectors(EncodeResult(dense=q), top_k=10, mode="dense")
            assert not {row(h) for hits in results for h in hits} & set(gone)
            assert recall(results, exact_top(x, q, 10, alive)) >= 0.95
            # a deleted document added again onto query 0 (an upsert): found first, with its exact score
            moved = gone[0]
            with index.transaction():
                index.add_encoded([Document(id=f"d{moved}", text="moved")], EncodeResult(dense=q[:1]))
            top = index.search_vectors(EncodeResult(dense=q[:1]), top_k=3, mode="dense")[0]
            assert row(top[0]) == moved and top[0].score == float(np.einsum("ij,j->i", q[:1], q[0])[0])
            assert top[0].text == "moved"


def test_merges_recompute_the_codes_and_a_reopened_index_searches_the_same(
    tmp_path: Path, minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    """Four segments merged into one (after deletions) get codes recomputed from the surviving float32 rows
    (int8's ranges change with the rows), which verify checks against dense.f32; the merged index finds
    what exact search finds among the survivors, and answers the same once reopened."""
    x, q = vectors
    for kind in ("int8", "binary"):
        path = tmp_path / kind
        index = Index.create(path, minilm, dense_quantization=kind, max_segments=8)
        assert isinstance(index, EmbeddedIndex)
        for part in range(4):
            rows = slice(part * 1000, (part + 1) * 1000)
            index.add_encoded(docs(part * 1000, (part + 1) * 1000), EncodeResult(dense=x[rows]))
        assert len(index.segments) == 4 and all(s.quantization == kind for s in index.segments)
        index.delete([f"d{r}" for r in range(0, ROWS, 7)])
        index.compact()
        (merged,) = index.segments
        assert merged.quantization == kind and merged.rows == ROWS - len(range(0, ROWS, 7))
        stored = np.asarray(merged.dense)
        scale = dc.fit(kind, stored)
        assert np.array_equal(merged.arrays[dc.CODES], dc.encode(kind, stored, scale))
        if kind == "int8":
            assert np.array_equal(merged.arrays[dc.SCALE], scale)
        assert index.verify()["problems"] == []
        after = index.search_vectors(EncodeResult(dense=q), top_k=10, mode="dense")
        alive = np.arange(ROWS) % 7 != 0
        assert not {row(h) for hits in after for h in hits} & set(range(0, ROWS, 7))
        assert recall(after, exact_top(x, q, 10, alive)) >= 0.95
        index.close()
        with Index.open(path, minilm) as reopened:
            again = reopened.search_vectors(EncodeResult(dense=q), top_k=10, mode="dense")
            assert [[(h.doc_id, h.score) for h in hits] for hits in again] == [
                [(h.doc_id, h.score) for h in hits] for hits in after
            ]


def test_auto_stays_flat_and_info_shows_the_codes(
    tmp_path: Path, minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    """With codes, `auto` never builds a graph (ann_threshold passed), and `info` counts their bytes."""
    x, _ = vectors
    index = build(tmp_path / "ix", minilm, x[:600], dense_quantization="binary", ann_threshold=100)
    info = index.info()
    assert info["segments"][0]["ann"] == "flat" and info["segments"][0]["codes"] == "binary"
    assert info["bytes"]["dense_ann"] == 0
    assert info["bytes"]["dense_codes"] == 600 * DIM // 8
    assert info["bytes_per_stored_row"]["dense_codes"] == DIM / 8
    assert info["settings"]["dense_quantization"] == "binary"
    int8 = build(tmp_path / "int8", minilm, x[:600], dense_quantization="int8")
    assert int8.info()["bytes"]["dense_codes"] == 600 * DIM + 2 * DIM * 4  # codes and lo / step
    plain = build(tmp_path / "plain", minilm, x[:600], ann_threshold=100)
    assert plain.info()["segments"][0]["ann"] == "hnsw" and plain.info()["bytes"]["dense_codes"] == 0


# ---------------------------------------------------------------------- integrity
@pytest.mark.parametrize("name", [dc.CODES, dc.SCALE])
def test_damaged_codes_are_named(tmp_path: Path, built: dict[str, Path], minilm: Embedder, name: str) -> None:
    path = tmp_path / "ix"
    shutil.copytree(built["int8"], path)
    damaged = next((path / "segments").iterdir()) / name
    corrupt(damaged)
    with pytest.raises(CorruptIndexError, match=name.replace(".", r"\.")):
        Index.open(path, minilm)  # small files are checked whole when the segment opens
    done = CliRunner().invoke(app, ["index", "verify", "--index", str(path)])
    assert done.exit_code == 2 and name in done.stderr, done.stderr


def test_damaged_codes_of_a_large_segment_are_found_before_a_result(
    tmp_path: Path,
    built: dict[str, Path],
    minilm: Embedder,
    vectors: tuple[np.ndarray, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A codes file too large to check at open is checked whole before the first scan reads it."""
    _, q = vectors
    path = tmp_path / "ix"
    shutil.copytree(built["binary"], path)
    corrupt(next((path / "segments").iterdir()) / dc.CODES, where="end")
    monkeypatch.setattr(segment, "CHECK_AT_OPEN", -1)
    index = Index.open(path, minilm)
    with pytest.raises(CorruptIndexError, match=r"dense\.codes"):
        index.search_vectors(EncodeResult(dense=q[:1]), top_k=5, mode="dense")


def test_codes_that_do_not_encode_the_vectors_are_reported(
    tmp_path: Path, built: dict[str, Path], minilm: Embedder
) -> None:
    """Checksums match (rewritten with the bytes) but the codes are not dense.f32's: verify says so."""
    path = tmp_path / "ix"
    shutil.copytree(built["binary"], path)
    with Index.open(path, minilm) as index:
        assert isinstance(index, EmbeddedIndex)
        seg = index.segments[0]
    codes = seg.directory / dc.CODES
    raw = bytearray(codes.read_bytes())
    raw[100] ^= 0xFF
    codes.write_bytes(bytes(raw))
    from trivec.retrieval.integrity import write_checksums

    body = read_manifest(path)
    record = body["segments"][0]
    record["checksums"] = write_checksums(seg.directory, record["files"])
    write_manifest(path, body)
    with Index.open(path, minilm) as index:
        assert isinstance(index, EmbeddedIndex)
        (problem,) = index.verify()["problems"]
        assert "dense.codes" in problem and "not the codes of dense.f32" in problem


# ---------------------------------------------------------------------- settings, old indexes, the CLI
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dense_quantization": "int4"}, "dense_quantization must be none, int8 or binary, got 'int4'"),
        (
            {"dense_quantization": "binary", "dense_oversampling": 0.5},
            "dense_oversampling must be a number ≥ 1",
        ),
        (
            {"dense_quantization": "int8", "dense_oversampling": "2"},
            "dense_oversampling must be a number ≥ 1",
        ),
        (
            {"dense_quantization": "int8", "dense_oversampling": True},
            "dense_oversampling must be a number ≥ 1",
        ),
        (
            {"dense_quantization": "int8", "dense_oversampling": math.nan},
            "dense_oversampling must be a number ≥ 1",
        ),
        (
            {"dense_quantization": "int8", "dense_oversampling": math.inf},
            "dense_oversampling must be a number ≥ 1",
        ),
        ({"dense_oversampling": 2.0}, "dense_oversampling applies to quantised dense vectors"),
        (
            {"dense_quantization": "int8", "dense_index": "hnsw"},
            "dense_quantization int8 applies to the flat",
        ),
        ({"dense_quantization": "binary", "dense_index": "ivf"}, "not to dense_index ivf"),
    ],
)
def test_bad_settings_are_one_line_errors(
    tmp_path: Path, tiny: Embedder, options: dict, message: str
) -> None:
    with pytest.raises(InputError, match=message) as caught:
        Index.create(tmp_path / "ix", tiny, **options)
    assert "\n" not in str(caught.value) and not (tmp_path / "ix").exists()
    for backend in ("embedded", "qdrant"):
        with pytest.raises(InputError, match=message):
            Index.check_build(tmp_path / "ix2", backend=backend, **options)


def test_good_settings() -> None:
    assert IndexSettings(dense_quantization="int8", dense_oversampling=1).validate().oversampling == 1.0
    assert IndexSettings(dense_quantization="binary").validate().oversampling == 8.0
    assert IndexSettings(dense_quantization="int8").validate().oversampling == 2.0
    assert IndexSettings().oversampling == 1.0


def test_an_index_built_before_the_setting_opens_as_none(
    tmp_path: Path, minilm: Embedder, vectors: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = vectors
    path = tmp_path / "old"
    index = build(path, minilm, x[:500], dense_index="flat")
    before = index.search_vectors(EncodeResult(dense=q[:3]), top_k=5, mode="dense")
    index.close()
    body = read_manifest(path)
    for name in ("dense_quantization", "dense_oversampling"):
        del body["settings"][name]
    write_manifest(path, body)
    with Index.open(path, minilm) as reopened:
        assert isinstance(reopened, EmbeddedIndex)
        assert reopened.settings.dense_quantization == "none" and reopened.settings.dense_oversampling is None
        assert reopened.segments[0].quantization is None
        after = reopened.search_vectors(EncodeResult(dense=q[:3]), top_k=5, mode="dense")
        assert [[h.doc_id for h in hits] for hits in after] == [[h.doc_id for h in hits] for hits in before]
        reopened.add_encoded(docs(500, 600), EncodeResult(dense=x[500:600]))
        assert reopened.info()["bytes"]["dense_codes"] == 0


def test_cli_build_info_and_bad_options(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": str(i), "text": f"wing number {i} in a slipstream"}) for i in range(6)),
        encoding="utf-8",
    )
    runner = CliRunner()
    common = [
        "index",
        "build",
        "--model",
        str(TINY_M3),
        "--corpus",
        str(corpus),
        "--max-length",
        "32",
        "--index",
    ]
    target = tmp_path / "ix"
    done = runner.invoke(
        app, [*common, str(target), "--dense-quantization", "binary", "--dense-oversampling", "3"]
    )
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["index", "info", "--index", str(target)])
    assert "dense      binary codes, oversampling 3 (the first stage" in shown.output, shown.output
    assert "dense flat (binary codes)" in shown.output and "dense_codes 48" in shown.output, shown.output
    data = json.loads(runner.invoke(app, ["index", "info", "--index", str(target), "--json"]).output)
    assert (
        data["settings"]["dense_quantization"] == "binary" and data["settings"]["dense_oversampling"] == 3.0
    )
    plain = tmp_path / "plain"
    assert runner.invoke(app, [*common, str(plain)]).exit_code == 0
    assert "dense      float32\n" in runner.invoke(app, ["index", "info", "--index", str(plain)]).output
    for options, message in [
        (["--dense-quantization", "int4"], "--dense-quantization must be none, int8 or binary, got int4"),
        (
            ["--dense-quantization", "int8", "--dense-oversampling", "0.5"],
            "--dense-oversampling must be a number ≥ 1, got 0.5",
        ),
        (["--dense-oversampling", "2"], "--dense-oversampling applies to quantised dense vectors"),
        (
            ["--dense-quantization", "int8", "--dense-index", "hnsw"],
            "--dense-quantization int8 applies to the flat",
        ),
    ]:
        bad = runner.invoke(app, [*common, str(tmp_path / "bad"), *options])
        errors = [line for line in bad.stderr.splitlines() if line.startswith("trivec: error:")]
        assert bad.exit_code == 2 and len(errors) == 1 and message in errors[0], bad.output
        assert not (tmp_path / "bad").exists()
