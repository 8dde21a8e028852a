"""Hidden states of any layer (`Embedder.encode(..., hidden_states=True, layer=k)`, `trivec encode --layer`):
equal to transformers' `output_hidden_states` on XLM-R (tiny-m3) and BERT (all-MiniLM-L6-v2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel

from tests.conftest import TINY_M3
from tests.test_cli import trivec_in_process
from trivec import Embedder
from trivec.errors import InputError

TEXTS = ["What is BGE M3?", "Der schnelle braune Fuchs springt über den faulen Hund.", "", "a " * 80]


def _reference(path: Path, embedder: Embedder, texts: list[str]) -> list[tuple[np.ndarray, ...]]:
    model = AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for ids in embedder.tokenize(texts, 64):
            states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            out.append(tuple(s[0].numpy() for s in states))
    return out


@pytest.mark.parametrize("layer", [0, 1, 2, -1, -3])
def test_tiny_m3_layers_equal_transformers(tiny: Embedder, layer: int) -> None:
    expected = _reference(TINY_M3, tiny, TEXTS)
    result = tiny.encode(TEXTS, dense=False, hidden_states=True, layer=layer, max_length=64, batch_tokens=64)
    assert result.dense is None and result.hidden_states is not None
    for i, states in enumerate(result.hidden_states):
        assert states.dtype == np.float32 and states.shape == expected[i][layer].shape
        np.testing.assert_allclose(states, expected[i][layer], atol=1e-5)
    assert result.num_tokens == [len(s) for s in result.hidden_states]


def test_minilm_bert_layers_equal_transformers(minilm: Embedder) -> None:
    from trivec.models.checkpoint import minilm_path

    expected = _reference(minilm_path(), minilm, TEXTS)
    for layer in (0, 3, 6):
        result = minilm.encode(TEXTS, dense=False, hidden_states=True, layer=layer, max_length=64)
        assert result.hidden_states is not None
        for i, states in enumerate(result.hidden_states):
            np.testing.assert_allclose(states, expected[i][layer], atol=1e-5)


def test_last_layer_gives_the_dense_vector(tiny: Embedder) -> None:
    """tiny-m3 pools CLS and normalises: the dense vector is the unit CLS row of the last layer."""
    result = tiny.encode(TEXTS, hidden_states=True, max_length=64)
    assert result.dense is not None and result.hidden_states is not None
    for dense, states in zip(result.dense, result.hidden_states, strict=True):
        np.testing.assert_allclose(dense, states[0] / np.linalg.norm(states[0]), atol=1e-5)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (3, "layer 3 is out of range: the model has 2 layers"),
        (-4, "layer -4 is out of range"),
        ("1", "layer must be an integer"),
    ],
)
def test_bad_layers(tiny: Embedder, layer: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tiny.encode(["x"], hidden_states=True, layer=layer)  # type: ignore[arg-type]


def test_encode_command_writes_hidden_states(tmp_path: Path, tiny: Embedder) -> None:
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS[:3]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = trivec_in_process("encode", "-i", str(source), "-o", str(out), "-m", str(TINY_M3), "--layer", "1")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = tiny.encode(TEXTS[:3], dense=False, hidden_states=True, layer=1)
    assert all(set(row) == {"hidden_states"} for row in rows)
    for row, states in zip(rows, expected.hidden_states or [], strict=True):
        np.testing.assert_allclose(np.asarray(row["hidden_states"]), states, atol=1e-6)
    both = trivec_in_process(
        "encode", "-i", str(source), "-o", str(out), "-m", str(TINY_M3), "--layer", "-1", "--dense"
    )
    assert both.returncode == 0 and set(json.loads(out.read_text().splitlines()[0])) == {
        "dense",
        "hidden_states",
    }
    bad = trivec_in_process(
        "encode", "-i", str(source), "-o", str(tmp_path / "x.jsonl"), "-m", str(TINY_M3), "--layer", "9"
    )
    assert (
        bad.returncode == 2
        and "--layer 9 is out of range" in bad.stderr
        and not (tmp_path / "x.jsonl").exists()
    )
