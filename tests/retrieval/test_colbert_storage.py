"""Compact ColBERT storage (issue #19): token pooling, int8 / int4 / binary codes, old indexes, bad options."""

from __future__ import annotations

import json
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
from trivec.retrieval import Index
from trivec.retrieval.colbert import COLBERT_DTYPES, FITTED, ColbertCodec
from trivec.retrieval.corpus import Document
from trivec.retrieval.manifest import read_manifest, write_manifest
from trivec.retrieval.pooling import pool_tokens, pooled_count
from trivec.retrieval.settings import IndexSettings

from .conftest import MAX_LENGTH, subset

UNFITTED = tuple(d for d in COLBERT_DTYPES if d not in FITTED)  # residual codes: test_colbert_residual.py


def unit_rows(rng: np.random.Generator, tokens: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((tokens, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", UNFITTED)
@pytest.mark.parametrize("dim", [8, 13, 384])
def test_codes_round_trip_as_stored(dtype: str, dim: int) -> None:
    """Decoding is a function of the stored bytes alone, and close to the input (bounded per code)."""
    rows = unit_rows(np.random.default_rng(dim), 40, dim)
    codec = ColbertCodec(dtype)
    codes, scales = codec.encode(rows)
    assert codes.dtype == codec.storage_dtype and codes.shape == (40, codec.code_width(dim))
    assert codec.bytes_per_token(dim) == codes.shape[1] * codes.itemsize + (4 if scales is not None else 0)
    stored = np.frombuffer(codes.tobytes(), dtype=codes.dtype).reshape(codes.shape)  # as read back from disk
    decoded = codec.decode(stored, scales, dim)
    assert decoded.shape == rows.shape and decoded.dtype == np.float32
    assert np.array_equal(decoded, codec.decode(codes.copy(), None if scales is None else scales.copy(), dim))
    if dtype == "binary":
        assert np.array_equal(np.sign(decoded), np.where(rows > 0, 1.0, -1.0))
        assert np.allclose(np.abs(decoded), np.abs(rows).mean(axis=1, keepdims=True))
    else:
        step = {"float32": 1e-7, "float16": 1e-3, "int8": 1 / 127, "int4": 1 / 7}[dtype]
        assert np.all(np.abs(decoded - rows) <= step * np.abs(rows).max(axis=1, keepdims=True) / 2 + 1e-6)


def test_zero_rows_and_empty_documents() -> None:
    for dtype in UNFITTED:
        codec = ColbertCodec(dtype, pool_factor=2)
        codes, scales = codec.encode(np.zeros((3, 16), np.float32))
        assert np.array_equal(codec.decode(codes, scales, 16), np.zeros((1, 16), np.float32))
        codes, scales = codec.encode(np.zeros((0, 16), np.float32))
        assert codec.decode(codes, scales, 16).shape == (0, 16)


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.integers(0, 60),
    dim=st.integers(2, 24),
    factor=st.integers(1, 6),
    seed=st.integers(0, 2**16),
    floor=st.sampled_from([0, 0, 4, 32]),
)
def test_pooling_properties(tokens: int, dim: int, factor: int, seed: int, floor: int) -> None:
    rows = unit_rows(np.random.default_rng(seed), tokens, dim) if tokens else np.zeros((0, dim), np.float32)
    pooled = pool_tokens(rows, factor, floor)
    assert pooled.dtype == np.float32 and pooled.shape[1] == dim
    if factor == 1 or tokens <= 1 or tokens <= floor:
        assert np.array_equal(pooled, rows)  # a short document keeps its tokens under the floor
        return
    assert 1 <= pooled.shape[0] <= pooled_count(tokens, factor, floor)
    assert pooled_count(tokens, factor, floor) == max(1, tokens // factor, floor)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)  # unit in, unit out
    assert np.array_equal(pooled, pool_tokens(rows.copy(), factor, floor))  # deterministic
    # every pooled vector is a positive multiple of a mean of input tokens: in their span, near one of them
    weights = np.linalg.lstsq(rows.T.astype(np.float64), pooled.T.astype(np.float64), rcond=None)[0]
    assert np.allclose(rows.T @ weights, pooled.T, atol=1e-4)
    assert np.all((pooled @ rows.T).max(axis=1) > 0)


def test_pooling_merges_duplicates_first() -> None:
    """Two copies of each of k distinct tokens, pool factor 2: exactly the k tokens, in first-seen order."""
    distinct = unit_rows(np.random.default_rng(0), 5, 32)
    doubled = np.concatenate([distinct, distinct[::-1]])
    assert np.allclose(pool_tokens(doubled, 2), distinct, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"colbert_dtype": "int8", "colbert_pool_factor": 2},
        {"colbert_dtype": "int4", "colbert_pool_factor": 3},
        {"colbert_dtype": "binary", "colbert_pool_factor": 1},
        {"colbert_dtype": "int4", "colbert_pool_factor": 2, "colbert_dim": 33},
    ],
)
def test_index_scores_the_vectors_as_stored(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult, options: dict
) -> None:
    """ColBERT scores of the index are MaxSim against exactly what the codec stores (decoded), recorded in
    the settings, kept through reopening and merging."""
    docs, enc = small_docs[:40], subset(small_encoded, list(range(40)))
    index = Index.create(tmp_path / "ix", tiny, max_length=MAX_LENGTH, **options)
    index.add_encoded(docs[:25], subset(enc, list(range(25))))
    index.add_encoded(docs[25:], subset(enc, list(range(25, 40))))
    index.compact()  # merged segments copy codes as they are
    index.close()
    reopened = Index.open(tmp_path / "ix")
    assert {k: reopened.info()["settings"][k] for k in options} == options
    codec = reopened.codec  # type: ignore[attr-defined]
    assert enc.colbert is not None and small_encoded.colbert is not None
    dim = codec.stored_dim(enc.colbert[0].shape[1])
    stored = [codec.decode(*codec.encode(m), dim) for m in enc.colbert]
    query = subset(small_encoded, [50])
    assert query.colbert is not None
    hits = reopened.search_vectors(query, top_k=40, mode="colbert")[0]
    expected = maxsim_scores(codec.project(query.colbert[0]), stored)
    position = {d.id: i for i, d in enumerate(docs)}
    assert len(hits) == 40
    for hit in hits:
        assert hit.scores["colbert"] == pytest.approx(float(expected[position[hit.doc_id]]), abs=1e-5)
    tokens = sum(codec.encode(m)[0].shape[0] for m in enc.colbert)
    per_token = codec.bytes_per_token(enc.colbert[0].shape[1])
    assert reopened.info()["bytes"]["colbert"] == tokens * per_token + 8 * 41


def test_default_storage_is_compact(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    defaults = IndexSettings()
    old = Index.create(
        tmp_path / "old", tiny, max_length=MAX_LENGTH, colbert_dtype="float16", colbert_pool_factor=1
    )
    new = Index.create(tmp_path / "new", tiny, max_length=MAX_LENGTH)
    for index in (old, new):
        index.add_encoded(small_docs[:60], subset(small_encoded, list(range(60))))
    settings_new = new.info()["settings"]
    assert settings_new["colbert_pool_factor"] == defaults.colbert_pool_factor > 1
    assert settings_new["colbert_dtype"] == defaults.colbert_dtype
    assert new.info()["bytes"]["colbert"] * 3 < old.info()["bytes"]["colbert"]
    # pooled by 3, but no document to fewer than min(its tokens, 32) vectors
    stored = np.diff(np.asarray(new.store.segments[0].arrays["colbert.off"]))  # type: ignore[attr-defined]
    assert small_encoded.colbert is not None and defaults.colbert_pool_floor == 32
    assert stored.tolist() == [pooled_count(r.shape[0], 3, 32) for r in small_encoded.colbert[:60]]
    assert any(r.shape[0] // 3 < pooled_count(r.shape[0], 3, 32) for r in small_encoded.colbert[:60])


def test_an_index_without_a_pool_factor_opens_as_built(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    """An index written before pooling records no pool factor (nor floor): it opens unpooled, fp16, and adds
    that way."""
    path = tmp_path / "old"
    index = Index.create(path, tiny, max_length=MAX_LENGTH, colbert_dtype="float16", colbert_pool_factor=1)
    index.add_encoded(small_docs[:20], subset(small_encoded, list(range(20))))
    before = index.search_vectors(subset(small_encoded, [3]), top_k=5, mode="colbert")[0]
    index.close()
    body = read_manifest(path)
    del body["settings"]["colbert_pool_factor"], body["settings"]["colbert_pool_floor"]
    body["segments"][0]["arrays"]["colbert.codes"]["dtype"] = "float16"
    write_manifest(path, body)
    reopened = Index.open(path)
    assert reopened.settings.colbert_pool_factor == 1 and reopened.settings.colbert_dtype == "float16"
    assert reopened.settings.colbert_pool_floor == 0  # no floor recorded: built before it
    after = reopened.search_vectors(subset(small_encoded, [3]), top_k=5, mode="colbert")[0]
    assert [(h.doc_id, h.score) for h in after] == [(h.doc_id, h.score) for h in before]
    reopened.add_encoded(small_docs[20:30], subset(small_encoded, list(range(20, 30))))
    assert reopened.info()["bytes_per_stored_row"]["colbert"] > 0
    reopened.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"colbert_pool_factor": 0}, "colbert_pool_factor must be an integer ≥ 1"),
        ({"colbert_pool_factor": "2"}, "colbert_pool_factor must be an integer ≥ 1"),
        ({"colbert_pool_factor": True}, "colbert_pool_factor must be an integer ≥ 1"),
        ({"colbert_pool_floor": -1}, "colbert_pool_floor must be an integer ≥ 0"),
        ({"colbert_pool_floor": 2.5}, "colbert_pool_floor must be an integer ≥ 0"),
        (
            {"colbert_dtype": "int2"},
            "colbert_dtype must be float16, float32, int8, int4, binary, residual1 or residual2",
        ),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, tiny: Embedder, options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        Index.create(tmp_path / "ix", tiny, **options)
    assert "\n" not in str(caught.value)


def test_cli_build_and_info_show_the_storage(tmp_path: Path, tiny: Embedder) -> None:
    from trivec.cli import app

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": str(i), "text": f"wing number {i} in a slipstream"}) for i in range(5)),
        encoding="utf-8",
    )
    runner = CliRunner()
    target = tmp_path / "ix"
    common = ["index", "build", "--model", str(TINY_M3), "--corpus", str(corpus), "--index"]
    done = runner.invoke(app, [*common, str(target), "--colbert-pool-factor", "3", "--colbert-dtype", "int4"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["index", "info", "--index", str(target)])
    line = (
        "colbert    int4 codes, all dimensions, pool factor 3 (≈ 1/3 of the tokens, at least 32 per document)"
    )
    assert line in shown.output, shown.output
    bad = runner.invoke(app, [*common, str(tmp_path / "bad"), "--colbert-pool-factor", "0"])
    assert bad.exit_code != 0 and "--colbert-pool-factor must be an integer ≥ 1" in bad.output


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 12), dim=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_packed_codes_decode_to_their_nibbles_and_bits(rows: int, dim: int, seed: int) -> None:
    """The byte → values tables give what the packing wrote: int4 low nibble first minus 8, binary
    big-endian bits as ±1 — times the row's scale; `unscaled` is the same without it."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.1, 2.0, rows).astype(np.float32)
    nibbles = rng.integers(0, 16, (rows, 2 * (-(-dim // 2))), dtype=np.uint8)
    packed = (nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)).astype(np.uint8)
    want = (nibbles[:, :dim].astype(np.float32) - 8) * scales[:, None]
    np.testing.assert_array_equal(ColbertCodec("int4").decode(packed, scales, dim), want)
    np.testing.assert_array_equal(ColbertCodec("int4").unscaled(packed, dim), nibbles[:, :dim] - 8.0)
    bits = rng.integers(0, 2, (rows, dim), dtype=np.uint8)
    signs = (bits.astype(np.float32) * 2 - 1) * scales[:, None]
    np.testing.assert_array_equal(
        ColbertCodec("binary").decode(np.packbits(bits, axis=1), scales, dim), signs
    )
    if rows:  # chosen rows (repeats and any order) are gathered as the rows alone give them
        pick = rng.integers(0, rows, 2 * rows)
        for dtype, codes in (("int4", packed), ("binary", np.packbits(bits, axis=1)), ("int8", nibbles)):
            codec = ColbertCodec(dtype)
            np.testing.assert_array_equal(
                codec.unscaled(codes, dim, rows=pick), codec.unscaled(codes, dim)[pick]
            )
