"""The unpadded fast path equals the padded `M3Model.forward`, falls back where it must, follows weight updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from trivec import Embedder
from trivec.inference.packed import PackedEncoder
from trivec.models.m3 import M3Model

TEXTS = [
    "What is BGE M3?",
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "",
    "北京是中国的首都。",
    "Der schnelle braune Fuchs springt über den faulen Hund. " * 12,
    "a a a a a a",
    "🤖🤖",
]
CPU = torch.device("cpu")


def padded_forward(model: M3Model, rows: list[list[int]], **heads: bool):
    width = max(len(r) for r in rows)
    pad = model.tokenizer.pad_token_id or 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    with torch.inference_mode():
        return model(input_ids, mask, **heads)


def check_against_padded(embedder: Embedder, rows: list[list[int]]) -> None:
    model = embedder.model
    heads = {"dense": True, "sparse": model.has_sparse, "colbert": model.has_colbert}
    reference = padded_forward(model, rows, **heads)
    packed = PackedEncoder.for_model(model)
    assert packed is not None
    with torch.inference_mode():
        out = packed(rows, CPU, **heads)
    assert out.offsets == list(np.cumsum([0] + [len(r) for r in rows]))
    torch.testing.assert_close(out.dense, reference.dense, atol=1e-5, rtol=0)
    if model.has_sparse:
        expected = torch.cat([reference.token_weights[i, : len(r)] for i, r in enumerate(rows)])
        torch.testing.assert_close(out.token_weights, expected, atol=1e-5, rtol=0)
    if model.has_colbert:
        expected = torch.cat([reference.colbert[i, : len(r) - 1] for i, r in enumerate(rows)])
        torch.testing.assert_close(out.colbert, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_name", ["tiny", "minilm"])
def test_packed_equals_padded_forward(model_name: str, request: pytest.FixtureRequest) -> None:
    embedder: Embedder = request.getfixturevalue(model_name)
    rows = embedder.tokenize(TEXTS, 256)
    check_against_padded(embedder, rows)  # mixed lengths: padded attention with a key mask
    check_against_padded(embedder, [rows[0], rows[0], rows[0]])  # equal lengths: no mask at all
    check_against_padded(embedder, [rows[4]])  # one text


def test_mcls_pooling_matches_cls_slots(tiny: Embedder) -> None:
    long_text = " ".join(f"word{i}" for i in range(700))
    packed = tiny.encode([long_text, "short"], mcls=True, max_length=1024)
    rows = tiny.tokenize([long_text, "short"], 1024)
    from trivec.inference.text_outputs import insert_cls_slots

    rows, slots = insert_cls_slots(rows, int(tiny.tokenizer.cls_token_id), 1024)
    width = max(len(r) for r in rows)
    cls_slots = torch.zeros((2, width), dtype=torch.bool)
    for i, s in enumerate(slots):
        cls_slots[i, s] = True
    assert len(slots[0]) > 2
    reference = padded_forward(tiny.model, rows, dense=True, cls_slots=cls_slots)
    np.testing.assert_allclose(packed.dense, reference.dense.numpy(), atol=1e-5)


def test_weight_updates_are_followed(minilm: Embedder) -> None:
    model = M3Model.from_pretrained("minilm-m3")
    packed = PackedEncoder.for_model(model)
    assert packed is not None
    rows = minilm.tokenize(TEXTS[:3], 64)
    with torch.inference_mode():
        before = packed(rows, CPU).dense
    with torch.no_grad():
        model.backbone.encoder.layer[0].attention.self.key.weight.mul_(1.5)
    with torch.inference_mode():
        after = packed(rows, CPU).dense
    assert not torch.allclose(before, after, atol=1e-4)
    torch.testing.assert_close(after, padded_forward(model, rows).dense, atol=1e-5, rtol=0)


def test_unsupported_encoder_falls_back_to_padded_forward(minilm: Embedder) -> None:
    config = BertConfig(
        vocab_size=minilm.tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        position_embedding_type="relative_key",
    )
    torch.manual_seed(0)
    model = M3Model(BertModel(config), minilm.tokenizer, pooling="mean")
    assert PackedEncoder.for_model(model) is None
    embedder = Embedder(model, device="cpu")
    rows = embedder.tokenize(TEXTS, 128)
    result = embedder.encode(TEXTS, max_length=128)
    np.testing.assert_allclose(result.dense, padded_forward(model, rows).dense.numpy(), atol=1e-5)


def test_bfloat16_is_opt_in_and_close() -> None:
    fp32 = Embedder.from_pretrained("minilm-m3", device="cpu")
    bf16 = Embedder.from_pretrained("minilm-m3", device="cpu", dtype="bfloat16")
    a = fp32.encode(TEXTS, max_length=256).dense
    b = bf16.encode(TEXTS, max_length=256).dense
    assert b.dtype == np.float32
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.999
    assert np.abs(a - b).max() < 2e-2
