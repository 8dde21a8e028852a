"""Loading and saving checkpoints in the BAAI / BGE layouts; clear errors for missing or mismatched heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_M3
from trivec import CheckpointError, Embedder, M3Model, UnsupportedOutputError
from trivec.models import minilm_path
from trivec.models.heads import COLBERT_HEAD_FILE, SPARSE_HEAD_FILE

TEXTS = ["What is BGE M3?", "", "Der schnelle braune Fuchs.", "the the the cat " * 40]


def outputs(embedder: Embedder) -> tuple:
    result = embedder.encode(TEXTS, dense=True, sparse=embedder.has_sparse, colbert=embedder.has_colbert)
    return result.dense, result.sparse, result.colbert


def test_m3_layout_loads_all_heads() -> None:
    model = M3Model.from_pretrained(TINY_M3)
    assert model.has_sparse and model.has_colbert
    assert model.pooling == "cls" and model.normalize
    assert model.max_length == 8192
    assert model.colbert_head is not None and model.colbert_head.out_features == 64
    # heads are fp16 on disk and fp32 in memory (no fp16 round trip of activations on CPU)
    assert next(model.colbert_head.parameters()).dtype == torch.float32


def test_dense_only_layout_refuses_sparse_and_colbert() -> None:
    embedder = Embedder.from_pretrained("all-MiniLM-L6-v2")
    assert not embedder.has_sparse and not embedder.has_colbert
    with pytest.raises(UnsupportedOutputError, match="no sparse head"):
        embedder.encode(["x"], sparse=True)
    with pytest.raises(UnsupportedOutputError, match="no colbert head"):
        embedder.score("q", ["p"], modes=["colbert"])
    with pytest.raises(CheckpointError, match="no head files"):
        M3Model.from_pretrained(minilm_path(), heads="require")


@pytest.mark.parametrize("missing", [SPARSE_HEAD_FILE, COLBERT_HEAD_FILE])
def test_one_missing_head_file_is_an_error_not_random_heads(tiny_copy: Path, missing: str) -> None:
    (tiny_copy / missing).unlink()
    with pytest.raises(CheckpointError, match=f"not {missing}"):
        M3Model.from_pretrained(tiny_copy)
    with pytest.raises(CheckpointError):
        M3Model.from_pretrained(tiny_copy, heads="require")
    created = M3Model.from_pretrained(tiny_copy, heads="init")
    assert created.has_sparse and created.has_colbert


def test_init_creates_seeded_heads_for_a_dense_model() -> None:
    first = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=3)
    second = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=3)
    assert first.has_sparse and first.has_colbert
    assert first.sparse_head is not None and second.sparse_head is not None
    assert torch.equal(first.sparse_head.linear.weight, second.sparse_head.linear.weight)
    smaller = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", colbert_dim=128)
    assert smaller.colbert_head is not None and smaller.colbert_head.out_features == 128


def test_mismatched_head_file_is_an_error(tiny_copy: Path) -> None:
    torch.save({"weight": torch.zeros(64, 32), "bias": torch.zeros(64)}, tiny_copy / COLBERT_HEAD_FILE)
    with pytest.raises(CheckpointError, match="hidden size 32 but the encoder has 64"):
        M3Model.from_pretrained(tiny_copy)
    torch.save({"w": torch.zeros(1, 64)}, tiny_copy / SPARSE_HEAD_FILE)
    with pytest.raises(CheckpointError, match="not a Linear state dict"):
        M3Model.from_pretrained(tiny_copy)
    (tiny_copy / SPARSE_HEAD_FILE).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read head file"):
        M3Model.from_pretrained(tiny_copy)


def test_bad_paths_give_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        M3Model.from_pretrained(tmp_path)
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        M3Model.from_pretrained(tmp_path / "file.bin")
    with pytest.raises(CheckpointError, match="neither a local directory nor a hub id"):
        M3Model.from_pretrained("./no/such/dir")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="BAAI/bge-m3"):
        M3Model.from_pretrained("BAAI/bge-m3")
    with pytest.raises(ValueError, match="unknown pooling mode"):
        M3Model.from_pretrained(TINY_M3, pooling="max")  # type: ignore[arg-type]


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    original = Embedder.from_pretrained(TINY_M3)
    original.model.save_pretrained(tmp_path / "saved")
    for name in (
        "config.json",
        "colbert_linear.pt",
        "sparse_linear.pt",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ):
        assert (tmp_path / "saved" / name).is_file(), name
    reloaded = Embedder.from_pretrained(tmp_path / "saved")
    (d1, s1, c1), (d2, s2, c2) = outputs(original), outputs(reloaded)
    assert np.array_equal(d1, d2)
    assert all(
        np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
        for a, b in zip(s1, s2, strict=True)
    )
    assert all(np.array_equal(a, b) for a, b in zip(c1, c2, strict=True))


def test_save_fp16_heads_like_the_hub(tmp_path: Path) -> None:
    model = M3Model.from_pretrained(TINY_M3)
    model.save_pretrained(tmp_path, head_dtype=torch.float16)
    state = torch.load(tmp_path / SPARSE_HEAD_FILE, weights_only=True)
    assert state["weight"].dtype == torch.float16 and set(state) == {"weight", "bias"}
    # the fixture's heads are fp16 already, so this save is still exact
    reloaded = Embedder.from_pretrained(tmp_path)
    np.testing.assert_array_equal(outputs(reloaded)[0], outputs(Embedder.from_pretrained(TINY_M3))[0])


def test_saved_dense_view_loads_in_sentence_transformers(tmp_path: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    embedder = Embedder.from_pretrained(TINY_M3)
    embedder.model.save_pretrained(tmp_path)
    st_model = sentence_transformers.SentenceTransformer(str(tmp_path), device="cpu")
    st_vectors = st_model.encode(TEXTS[:3], convert_to_numpy=True)
    np.testing.assert_allclose(st_vectors, embedder.encode(TEXTS[:3]).dense, atol=1e-5)


def test_pooling_override_changes_dense_output() -> None:
    mean = Embedder.from_pretrained("minilm-m3")
    cls = Embedder.from_pretrained("minilm-m3", pooling="cls")
    assert cls.model.pooling == "cls"
    assert not np.allclose(mean.encode(["hello world"]).dense, cls.encode(["hello world"]).dense)


def test_minilm_m3_is_minilm_with_the_packaged_heads(minilm: Embedder) -> None:
    """`minilm-m3` = the published all-MiniLM-L6-v2 backbone + trivec's trained heads (shipped, small, fp16)."""
    from trivec.models import minilm_heads_path

    heads = minilm_heads_path()
    assert heads is not None, "src/trivec/resources/minilm-m3/ is missing its head files"
    assert sum(p.stat().st_size for p in heads.glob("*.pt")) < 1_000_000
    default = Embedder.from_pretrained("minilm-m3", device="cpu")
    assert default.available_modes() == ["dense", "sparse", "colbert"]
    texts = ["What is BGE M3?", "lift of a wing in a propeller slipstream"]
    full = default.encode(texts, dense=True, sparse=True, colbert=True)
    np.testing.assert_array_equal(full.dense, minilm.encode(texts, dense=True).dense)  # backbone unchanged
    assert full.sparse is not None and all(len(s.indices) > 0 for s in full.sparse)
    assert full.colbert is not None and full.colbert[0].shape[1] == 384
