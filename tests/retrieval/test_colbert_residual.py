"""Residual ColBERT codes (centroid id + 1 or 2 bits per dimension): the codebook, the codes, the index."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec.errors import InputError
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.scoring import maxsim_scores
from trivec.retrieval import Index, IndexSettings
from trivec.retrieval.colbert import ColbertCodec, fit_codec
from trivec.retrieval.corpus import Document
from trivec.retrieval.layout import verify_index
from trivec.retrieval.manifest import read_manifest
from trivec.retrieval.pooling import pooled_count
from trivec.retrieval.residual import (
    MAX_CENTROIDS,
    MIN_SAMPLE,
    ResidualCodes,
    centroid_count,
    check_bits,
    fit_residual,
    pack_codes,
)
from trivec.retrieval.segment import CorruptIndexError

from .conftest import MAX_LENGTH, subset


def clustered(seed: int, documents: int = 60, tokens: int = 30, dim: int = 48) -> list[np.ndarray]:
    """Unit token vectors near 40 cluster centres, as real ColBERT vectors are (never uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32)
    out = []
    for _ in range(documents):
        rows = centres[rng.integers(0, 40, tokens)] + 0.35 * rng.standard_normal((tokens, dim))
        out.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
    return out


def squared_error(codec: ColbertCodec, documents: list[np.ndarray]) -> float:
    errors = []
    for rows in documents:
        codes, scales = codec.encode(rows)
        errors.append(np.sum((codec.decode(codes, scales, rows.shape[1]) - rows) ** 2, axis=1))
    return float(np.mean(np.concatenate(errors)))


def test_round_trip_beats_binary_on_clustered_tokens() -> None:
    """Fitted on one sample, coding others: 1 bit per dimension (+ 2 bytes) errs less than binary's sign and
    scale, 2 bits less again; decoded rows have the sample's length (1 here)."""
    sample, held_out = clustered(0), clustered(0)[:0] + clustered(0, documents=20)[10:]
    errors = {}
    for dtype in ("binary", "residual1", "residual2"):
        codec, _ = fit_codec(ColbertCodec(dtype), sample, None)
        errors[dtype] = squared_error(codec, held_out)
    assert errors["residual2"] < errors["residual1"] < 0.5 * errors["binary"]
    codec, _ = fit_codec(ColbertCodec("residual2"), sample, None)
    decoded = codec.decode(*codec.encode(held_out[0]), 48)
    assert np.allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)


def test_fit_is_deterministic_and_stored_exactly() -> None:
    sample = clustered(3)
    first, second = fit_residual(sample, 2, seed=7), fit_residual(sample, 2, seed=7)
    assert np.array_equal(first.to_array(), second.to_array())
    again = ResidualCodes.from_array(first.to_array(), first.count, first.dim, first.bits)
    assert np.array_equal(again.to_array(), first.to_array())
    rows = sample[5]
    assert np.array_equal(again.encode(rows), first.encode(rows))
    assert np.array_equal(again.decode(first.encode(rows)), first.decode(first.encode(rows)))
    empty = first.encode(np.zeros((0, 48), np.float32))  # a document without tokens
    assert empty.shape == (0, first.code_width(48)) and first.decode(empty).shape == (0, 48)


def test_nearest_in_row_chunks_is_the_same_as_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`nearest` scores a few rows at a time (its scores stay small at 65,536 × 4,096): the same ids."""
    import trivec.retrieval.residual as residual

    book = fit_residual(clustered(1), 2)
    rows = np.concatenate(clustered(2))
    at_once = book.nearest(rows)
    monkeypatch.setattr(residual, "NEAREST_SCORES", book.count * 7)  # 7 rows per step, a partial last one
    assert rows.shape[0] % 7 and np.array_equal(book.nearest(rows), at_once)


def test_centroid_count_rule() -> None:
    assert centroid_count(MIN_SAMPLE) == 16  # n / 16
    assert centroid_count(43_000) == 2048  # 16·√n ≈ 3,318
    assert centroid_count(10**12) == MAX_CENTROIDS
    with pytest.raises(InputError, match=f"at least {MIN_SAMPLE} token vectors"):
        centroid_count(MIN_SAMPLE - 1)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(0, 12), dim=st.integers(1, 37), bits=st.sampled_from([1, 2]), seed=st.integers(0, 999)
)
def test_packed_codes_decode_to_their_buckets(rows: int, dim: int, bits: int, seed: int) -> None:
    """Any codes, any width: the compiled decode reads each dimension's bucket and the centroid id back."""
    rng = np.random.default_rng(seed)
    levels = 1 << bits
    centroids = rng.standard_normal((300, dim)).astype(np.float32)
    weights = rng.standard_normal((dim, levels)).astype(np.float32)
    book = ResidualCodes(centroids, np.zeros((dim, levels - 1)), weights, 1.0, bits)
    ids = rng.integers(0, 300, rows)
    buckets = rng.integers(0, levels, (rows, dim)).astype(np.uint8)
    stored = np.concatenate([ids.astype("<u2").view(np.uint8).reshape(rows, 2), pack_codes(buckets, bits)], 1)
    assert stored.shape == (rows, book.code_width(dim))
    expected = centroids[ids] + weights[np.arange(dim), buckets]
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    expected = np.where(norms > 0, expected / np.where(norms > 0, norms, 1), 0)
    picked = rng.permutation(rows)
    assert np.allclose(book.decode(stored, picked), expected[picked], atol=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fit_residual(clustered(0), 3), "residual codes take 1, 2 bits per dimension, got 3"),
        (lambda: check_bits(True), "residual codes take 1, 2 bits per dimension, got True"),
        (lambda: fit_residual(clustered(0, documents=2, tokens=10), 2), "at least 256 token vectors"),
        (lambda: fit_residual([], 1), "at least 256 token vectors in the first documents written"),
        (lambda: fit_residual(clustered(0), 2, count=10**6), "need 1 to 1800 centroids, got 1000000"),
        (lambda: ColbertCodec("residual3"), "colbert dtype must be one of .*residual1, residual2"),
        (
            lambda: ColbertCodec("residual2").encode(clustered(0)[0]),
            "residual2 ColBERT codes have no codebook",
        ),
        (
            lambda: ColbertCodec("residual1", residual=fit_residual(clustered(0), 2)),
            "a 2-bit residual codebook does not code residual1",
        ),
        (
            lambda: fit_residual(clustered(0), 1).encode(np.zeros((2, 5))),
            r"\[tokens, 48\] vectors, got \(2, 5\)",
        ),
    ],
)
def test_bad_input_is_named(call: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        call()  # type: ignore[operator]
    assert "\n" not in str(caught.value)


def stored_tokens(encoded: EncodeResult, pool: int) -> int:
    """Token vectors `encoded`'s documents store at pool factor `pool`."""
    floor = IndexSettings().colbert_pool_floor
    return sum(
        pooled_count(rows.shape[0], pool, floor) if pool > 1 else rows.shape[0]
        for rows in encoded.colbert or []
    )


@pytest.mark.parametrize(
    "options",
    [
        {"colbert_dtype": "residual2", "colbert_pool_factor": 2},
        {"colbert_dtype": "residual1", "colbert_pool_factor": 1},
        {"colbert_dtype": "residual2", "colbert_pool_factor": 1, "colbert_dim": 24},
    ],
)
def test_index_stages_float16_rows_then_scores_residual_codes_as_stored(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    options: dict,
    fit_at: Callable[[int], None],
) -> None:
    """Built with the tiny model's vectors: rows are staged as float16 (scored as stored) until the index
    holds `FIT_SAMPLE` stored tokens; the write that brings it there (staged too) fits the codebook on all of
    them, and the staged segments are coded from the values they held. The codebook is stored with the index (checksummed, kept
    by garbage collection, verified), reopened as it was; ColBERT scores are MaxSim against the decoded stored
    codes, through a second segment and a merge."""
    docs, enc = small_docs[:60], subset(small_encoded, list(range(60)))
    first = subset(enc, list(range(45)))
    threshold = stored_tokens(first, options["colbert_pool_factor"]) + 1
    fit_at(threshold)
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, **options)
    bits = int(options["colbert_dtype"][-1])
    assert index.info()["colbert_residual"] == {
        "bits": bits,
        "centroids": None,
        "staged_tokens": 0,
        "fit_at_tokens": threshold,
    }
    index.add_encoded(docs[:45], first)
    staged = index.info()["colbert_residual"]
    assert staged["centroids"] is None
    assert staged["staged_tokens"] == stored_tokens(first, options["colbert_pool_factor"])
    query = subset(small_encoded, [70])
    assert query.colbert is not None
    codec = index.codec  # type: ignore[attr-defined]
    as_staged = [codec.staging().decode(*codec.staging().encode(m)) for m in first.colbert or []]
    expected = maxsim_scores(codec.project(query.colbert[0]), as_staged)
    for hit in index.search_vectors(query, top_k=45, mode="colbert")[0]:
        position = int(next(i for i, d in enumerate(docs) if d.id == hit.doc_id))
        assert hit.scores["colbert"] == pytest.approx(float(expected[position]), abs=1e-4)
    index.add_encoded(docs[45:], subset(enc, list(range(45, 60))))
    book = index.codec.residual  # type: ignore[attr-defined]
    assert book is not None and index.info()["colbert_residual"]["staged_tokens"] == 0
    assert book.count == centroid_count(stored_tokens(enc, options["colbert_pool_factor"]))  # staged rows too
    index.compact()
    index.close()
    body = read_manifest(tmp_path / "ix")
    assert not any(record.get("colbert_staged") for record in body["segments"])
    assert (
        body["residual"]["centroids"] == book.count and (tmp_path / "ix" / body["residual"]["file"]).is_file()
    )
    assert verify_index(tmp_path / "ix")["problems"] == []
    reopened = Index.open(tmp_path / "ix")
    codec = reopened.codec  # type: ignore[attr-defined]
    assert np.array_equal(codec.residual.to_array(), book.to_array())
    assert {k: reopened.info()["settings"][k] for k in options} == options
    assert reopened.info()["colbert_residual"]["centroids"] == book.count
    assert enc.colbert is not None and small_encoded.colbert is not None
    dim = codec.stored_dim(enc.colbert[0].shape[1])
    staging = codec.staging()
    stored = [  # all 60 staged (the write that filled the sample too), coded from their float16 values
        codec.decode(*codec.code(staging.encode(m)[0].astype(np.float32)), dim) for m in enc.colbert
    ]
    hits = reopened.search_vectors(query, top_k=60, mode="colbert")[0]
    expected = maxsim_scores(codec.project(query.colbert[0]), stored)
    position = {d.id: i for i, d in enumerate(docs)}
    for hit in hits:
        assert hit.scores["colbert"] == pytest.approx(float(expected[position[hit.doc_id]]), abs=1e-5)
    tokens = sum(codec.encode(m)[0].shape[0] for m in enc.colbert)
    assert (
        reopened.info()["bytes"]["colbert"]
        == tokens * codec.bytes_per_token(enc.colbert[0].shape[1]) + 8 * 61
    )
    reopened.close()


def test_rows_deleted_while_staged_leave_the_sample(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
) -> None:
    """A document deleted before the codebook is fitted neither counts toward its sample nor enters the fit,
    and is gone once the staged rows are coded."""
    pool = 2
    first, kept = subset(small_encoded, list(range(40))), subset(small_encoded, list(range(1, 40)))
    more = subset(small_encoded, list(range(40, 60)))
    fit_at(stored_tokens(first, pool) + 1)
    index = Index.create(
        tmp_path / "ix", tiny, max_length=MAX_LENGTH, colbert_dtype="residual2", colbert_pool_factor=pool
    )
    index.add_encoded(small_docs[:40], first)
    index.delete([small_docs[0].id])
    assert index.info()["colbert_residual"]["staged_tokens"] == stored_tokens(kept, pool)
    index.add_encoded(small_docs[40:60], more)
    residual = index.info()["colbert_residual"]
    assert residual["staged_tokens"] == 0
    assert residual["centroids"] == centroid_count(stored_tokens(kept, pool) + stored_tokens(more, pool))
    hits = index.search_vectors(subset(small_encoded, [0]), top_k=60, mode="colbert")[0]
    assert len(hits) == 59 and small_docs[0].id not in {hit.doc_id for hit in hits}
    index.close()


def test_documents_may_bring_residual_codes(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
) -> None:
    """After the first documents fitted the codebook, documents coded by the index's codec are stored as given;
    before it (nothing to code with, rows staged) they are refused."""
    fit_at(MIN_SAMPLE)
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, colbert_dtype="residual2")
    coded = subset(small_encoded, list(range(40, 50)))
    assert coded.colbert is not None
    rows, coded.colbert = coded.colbert, None
    with pytest.raises(InputError, match="codes ColBERT vectors itself: give them, not codes"):
        index.add_encoded(
            small_docs[40:50], EncodeResult(**{**coded.__dict__, "colbert_codes": [(r, None) for r in rows]})
        )
    index.add_encoded(small_docs[:40], subset(small_encoded, list(range(40))))
    coded.colbert_codes = [index.codec.encode(r) for r in rows]  # type: ignore[attr-defined]
    index.add_encoded(small_docs[40:50], coded)
    query = subset(small_encoded, [45])
    assert index.search_vectors(query, top_k=1, mode="colbert")[0][0].doc_id == small_docs[45].id
    index.close()


def test_cli_build_and_info_show_residual_codes(tmp_path: Path, fit_at: Callable[[int], None]) -> None:
    """`index info` names the fitted codebook, or — in an index too small to fit one yet (a single short
    document: no error) — the staged float16 rows and the stored tokens the fit waits for."""
    from trivec.cli import app

    fit_at(MIN_SAMPLE)
    corpus = tmp_path / "corpus.jsonl"
    words = ["wing", "flow", "shock", "boundary", "layer", "slipstream", "heat", "transfer", "plate", "cone"]
    corpus.write_text(
        "\n".join(
            json.dumps({"id": str(i), "text": " ".join(words[(i + k) % 10] for k in range(40))})
            for i in range(30)
        ),
        encoding="utf-8",
    )
    runner = CliRunner()
    target = tmp_path / "ix"
    common = ["index", "build", "--model", str(TINY_M3), "--corpus", str(corpus), "--index", str(target)]
    done = runner.invoke(app, [*common, "--colbert-pool-factor", "2", "--colbert-dtype", "residual2"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["index", "info", "--index", str(target)])
    count = read_manifest(target)["residual"]["centroids"]
    line = f"colbert    residual codes, 2 bits, {count} centroids, all dimensions, pool factor 2"
    assert line in shown.output, shown.output
    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps({"id": "a", "text": "one short wing"}), encoding="utf-8")
    few_target = tmp_path / "b"
    small = runner.invoke(
        app,
        [
            "index",
            "build",
            "--model",
            str(TINY_M3),
            "--corpus",
            str(few),
            "--index",
            str(few_target),
            "--colbert-dtype",
            "residual1",
        ],
    )
    assert small.exit_code == 0, small.output
    shown = runner.invoke(app, ["index", "info", "--index", str(few_target)])
    tokens = read_manifest(few_target)["segments"][0]["arrays"]["colbert.codes"]["shape"][0]
    staged = (
        f"residual codes, 1 bit, float16 until {MIN_SAMPLE} stored tokens fit the centroids ({tokens} now)"
    )
    assert staged in shown.output, shown.output
    found = runner.invoke(app, ["search", "--index", str(few_target), "--mode", "colbert", "--json", "wing"])
    assert found.exit_code == 0 and '"a"' in found.output, found.output


def test_a_damaged_codebook_is_found(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
) -> None:
    """The codebook file is checksummed like the projection: `verify` names it, opening refuses it, and an
    unreferenced one (a crashed writer's) is removed by the next writer."""
    fit_at(MIN_SAMPLE)
    path = tmp_path / "ix"
    with Index.create(path, tiny, max_length=MAX_LENGTH, colbert_dtype="residual1") as index:
        index.add_encoded(small_docs[:30], subset(small_encoded, list(range(30))))
    stale = path / "colbert.residual.deadbeef.f32"
    stale.write_bytes(b"\0" * 8)
    with Index.open(path) as index:
        index.add_encoded(small_docs[30:35], subset(small_encoded, list(range(30, 35))))
    assert not stale.exists()
    book = path / read_manifest(path)["residual"]["file"]
    data = bytearray(book.read_bytes())
    data[len(data) // 2] ^= 0xFF
    book.write_bytes(bytes(data))
    problems = verify_index(path)["problems"]
    assert len(problems) == 1 and book.name in problems[0]
    with pytest.raises(CorruptIndexError, match=book.name):
        Index.open(path)


@pytest.mark.parametrize("held", [2, 4])
def test_the_codebook_is_fitted_once_staged_batches_fill_its_sample(
    tmp_path: Path,
    tiny: Embedder,
    small_docs: list[Document],
    small_encoded: EncodeResult,
    fit_at: Callable[[int], None],
    held: int,
) -> None:
    """Not on the first batch alone: batches are staged until their stored tokens make `FIT_SAMPLE` (here the
    first `held` batches), then the codebook is fitted on all of them and the rest coded."""
    pool = 2
    batches = [
        (small_docs[i : i + 15], subset(small_encoded, list(range(i, i + 15)))) for i in range(0, 60, 15)
    ]
    stored = [stored_tokens(enc, pool) for _, enc in batches]
    fit_at(sum(stored[: held - 1]) + 1)
    index = Index.create(
        tmp_path / "ix", tiny, max_length=MAX_LENGTH, colbert_dtype="residual2", colbert_pool_factor=pool
    )
    index.add_encoded_batches(iter(batches))
    assert index.info()["colbert_residual"]["centroids"] == centroid_count(sum(stored[:held]))
    assert centroid_count(sum(stored[:held])) != centroid_count(stored[0])
    assert index.info()["documents"] == 60
    ids = [
        hit.doc_id for hit in index.search_vectors(subset(small_encoded, [33]), top_k=1, mode="colbert")[0]
    ]
    assert ids == [small_docs[33].id]
    index.close()
