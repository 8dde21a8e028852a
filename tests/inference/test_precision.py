"""dtype="auto": bf16 where the device runs it natively, float32 elsewhere; float32 stays exact and the default."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.conftest import TINY_M3, TINY_RERANKER
from trivec import Embedder
from trivec.errors import InputError
from trivec.inference import precision
from trivec.inference.precision import check_dtype, describe_auto, resolve_dtype
from trivec.inference.reranker import Reranker

CPU = torch.device("cpu")


@pytest.fixture
def bf16_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)


@pytest.fixture
def plain_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)


def test_names_resolve_to_their_dtype() -> None:
    for name, dtype in precision.NAMES.items():
        assert resolve_dtype(name, CPU) == dtype
    assert resolve_dtype(None, CPU) is None
    assert resolve_dtype(torch.float16, CPU) == torch.float16


def test_auto_follows_the_cpu(bf16_cpu: None) -> None:
    assert resolve_dtype("auto", CPU) == torch.bfloat16
    assert describe_auto(CPU) == "bfloat16 (cpu: AMX-BF16 / AVX512-BF16)"


def test_auto_is_float32_without_native_bf16(plain_cpu: None) -> None:
    assert resolve_dtype("auto", CPU) == torch.float32
    assert describe_auto(CPU) == "float32 (cpu: no AMX-BF16 / AVX512-BF16)"


def test_auto_on_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float32
    assert resolve_dtype("auto", torch.device("mps")) == torch.float32  # not measured there


def test_cpu_probe_matches_torch() -> None:
    capabilities = torch.cpu.get_capabilities()
    expected = bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))
    assert precision.cpu_has_fast_bf16() is expected


def test_bad_dtype_is_one_line() -> None:
    with pytest.raises(InputError, match=r"^dtype must be auto, float32, bfloat16 or float16, got 'int4'$"):
        check_dtype("int4")
    with pytest.raises(InputError, match="dtype must be auto"):
        Embedder.from_pretrained(TINY_M3, dtype="int4")
    with pytest.raises(InputError, match="dtype must be auto"):
        Reranker.from_pretrained(TINY_RERANKER, dtype="double")


def test_embedder_auto_loads_bf16_where_native(bf16_cpu: None) -> None:
    embedder = Embedder.from_pretrained(TINY_M3, dtype="auto", device="cpu")
    assert next(embedder.model.parameters()).dtype == torch.bfloat16
    result = embedder.encode(["a short text", "another one"], dense=True, sparse=True, colbert=True)
    assert result.dense is not None and result.dense.dtype == np.float32  # outputs stay float32


def test_embedder_auto_is_exact_float32_elsewhere(plain_cpu: None) -> None:
    texts = ["a short text", "another one, a little longer than the first"]
    auto = Embedder.from_pretrained(TINY_M3, dtype="auto", device="cpu")
    exact = Embedder.from_pretrained(TINY_M3, device="cpu")
    assert next(auto.model.parameters()).dtype == torch.float32
    assert np.array_equal(auto.encode(texts).dense, exact.encode(texts).dense)


def test_the_api_default_stays_float32(bf16_cpu: None) -> None:
    """No dtype: float32 even where bf16 is native (FlagEmbedding parity is exact)."""
    assert next(Embedder.from_pretrained(TINY_M3, device="cpu").model.parameters()).dtype == torch.float32


def test_reranker_auto_is_float32(bf16_cpu: None) -> None:
    """bf16's effect on reranking is unmeasured: a cross-encoder's `auto` is float32."""
    reranker = Reranker.from_pretrained(TINY_RERANKER, dtype="auto", device="cpu")
    assert next(reranker.model.parameters()).dtype == torch.float32


def test_fingerprint_is_the_stored_weights_whatever_the_dtype() -> None:
    """An index built in float32 is searched by the same model loaded in bf16 (dtype="auto"), and back."""
    from trivec.retrieval.identity import identify

    exact = Embedder.from_pretrained(TINY_M3, device="cpu")
    half = Embedder.from_pretrained(TINY_M3, dtype="bfloat16", device="cpu")
    assert identify(half).fingerprint == identify(exact).fingerprint
    # the fingerprint indexes were built with before dtype="auto": unchanged
    assert identify(exact).fingerprint == "09e2cea7bfd2a50c11e767e82f96ef1b"


def test_bf16_searches_a_float32_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from trivec.retrieval import Index

    docs = [
        {"id": str(i), "text": t} for i, t in enumerate(["red apples", "blue sky", "green grass", "cars"])
    ]
    with Index.build(tmp_path / "ix", docs, Embedder.from_pretrained(TINY_M3, device="cpu")):
        pass
    half = Embedder.from_pretrained(TINY_M3, dtype="bfloat16", device="cpu")
    with Index.open(tmp_path / "ix", half) as index:
        hits = index.search(["red apples"], top_k=2)
    assert len(hits[0]) == 2


def _encode_cli(tmp_path, *options: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    import json

    from typer.testing import CliRunner

    from trivec.cli import app

    source, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("a short text\nanother one, a little longer\n", encoding="utf-8")
    done = CliRunner().invoke(
        app, ["encode", "-m", str(TINY_M3), "-i", str(source), "-o", str(out), *options]
    )
    assert done.exit_code == 0, done.output
    return np.array([json.loads(line)["dense"] for line in out.read_text(encoding="utf-8").splitlines()])


def test_commands_default_to_auto(tmp_path, monkeypatch: pytest.MonkeyPatch, bf16_cpu: None) -> None:  # type: ignore[no-untyped-def]
    """Without --dtype or TRIVEC_DTYPE a command encodes in bf16 where it is native; --dtype float32 is exact."""
    monkeypatch.delenv("TRIVEC_DTYPE", raising=False)
    exact = Embedder.from_pretrained(TINY_M3, device="cpu").encode(
        ["a short text", "another one, a little longer"]
    )
    assert exact.dense is not None
    auto = _encode_cli(tmp_path)
    assert not np.array_equal(auto, exact.dense) and np.abs(auto - exact.dense).max() < 0.05
    assert np.allclose(_encode_cli(tmp_path, "--dtype", "float32"), exact.dense, atol=1e-6)
    monkeypatch.setenv("TRIVEC_DTYPE", "float32")  # the environment sets the commands' default
    assert np.allclose(_encode_cli(tmp_path), exact.dense, atol=1e-6)


def test_bad_dtype_option_is_one_line(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from trivec.cli import app

    source = tmp_path / "in.txt"
    source.write_text("text\n", encoding="utf-8")
    args = ["encode", "-m", str(TINY_M3), "-i", str(source), "-o", str(tmp_path / "o.jsonl")]
    for env, extra in (("float32", ["--dtype", "int4"]), ("int4", [])):
        monkeypatch.setenv("TRIVEC_DTYPE", env)
        done = CliRunner().invoke(app, args + extra)
        assert done.exit_code == 2
        assert (
            done.stderr.strip()
            == "trivec: error: --dtype must be auto, float32, bfloat16 or float16, got 'int4'"
        )
    assert not (tmp_path / "o.jsonl").exists()


def test_onednn_cache_is_bounded_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU `Embedder` bounds oneDNN's primitive cache and ideep's (docs/scale.md), and keeps a capacity the
    user set."""
    for env in (precision.ONEDNN_CACHE_ENV, precision.IDEEP_CACHE_ENV):
        monkeypatch.delenv(env, raising=False)
    Embedder.from_pretrained(TINY_M3, device="cpu")
    assert os.environ[precision.ONEDNN_CACHE_ENV] == str(precision.ONEDNN_CACHE_CAPACITY)
    assert os.environ[precision.IDEEP_CACHE_ENV] == str(precision.ONEDNN_CACHE_CAPACITY)
    monkeypatch.setenv(precision.ONEDNN_CACHE_ENV, "7")
    monkeypatch.setenv(precision.IDEEP_CACHE_ENV, "9")
    precision.limit_onednn_cache()
    assert os.environ[precision.ONEDNN_CACHE_ENV] == "7"
    assert os.environ[precision.IDEEP_CACHE_ENV] == "9"
