"""The anchor loss: trained dense vectors pulled toward the LoRA backbone's own (adapters off)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from tests.training.test_gradcache import cached_step, gradients, make_inputs
from trivec.errors import InputError
from trivec.inference.encoder import Embedder
from trivec.models import M3Model
from trivec.models.lora import add_lora
from trivec.training.arguments import M3_DEFAULTS, LossArguments, build_config
from trivec.training.modeling import ContrastiveModel, anchor_loss, set_dropout
from trivec.training.reps import Reps
from trivec.training.train import build_trainer, train_contrastive

TEXTS = [f"query {w} about things {i}" for i, w in enumerate(["alpha", "beta", "gamma", "delta", "omega"])]


def _drift(out: Path, base: np.ndarray) -> float:
    """Mean 1 - cosine between the trained model's dense vectors and the base model's."""
    trained = Embedder.from_pretrained(out, device="cpu").encode(TEXTS).dense
    return float(np.mean(1 - np.sum(trained * base, axis=1)))


def test_the_anchor_keeps_the_dense_vectors_near_the_backbones_own(tmp_path: Path) -> None:
    data = [str(write_jsonl(tmp_path / "train.jsonl", synthetic_rows(16)))]
    base = Embedder.from_pretrained(TINY_M3, device="cpu").encode(TEXTS).dense
    drifts = {}
    for weight in (0.0, 50.0):
        overrides = quick_overrides(
            tmp_path, data, lora_rank=4, max_steps=12, learning_rate=1e-2, anchor_weight=weight
        )
        overrides["output_dir"] = str(tmp_path / f"w{weight}")
        config = build_config({}, overrides, defaults=M3_DEFAULTS)
        trainer = build_trainer(config)
        trainer.train()
        logged = [row for row in trainer.state.log_history if "loss_anchor" in row]
        assert bool(logged) == (weight > 0)  # logged as a loss part only when on
        if weight:
            assert float(logged[0]["loss_anchor"]) == pytest.approx(0.0, abs=1e-6)  # new adapters: B = 0
            assert float(logged[-1]["loss_anchor"]) > 0
        drifts[weight] = _drift(train_contrastive(config), base)
    assert drifts[0.0] > 2 * drifts[50.0] > 0


def test_anchor_loss_is_the_mean_cosine_distance_over_queries_and_passages() -> None:
    q = Reps(dense=torch.tensor([[1.0, 0.0]]), reference=torch.tensor([[0.0, 1.0]]))
    p = Reps(dense=torch.tensor([[1.0, 0.0], [0.6, 0.8]]), reference=torch.tensor([[1.0, 0.0], [0.6, 0.8]]))
    assert float(anchor_loss(q, p)) == pytest.approx(1 / 3)


def test_the_anchor_needs_lora_and_a_non_negative_weight(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="anchor_weight must be >= 0"):
        LossArguments(anchor_weight=-1).validate()
    data = [str(write_jsonl(tmp_path / "train.jsonl", synthetic_rows(8)))]
    config = build_config({}, quick_overrides(tmp_path, data, anchor_weight=1.0), defaults=M3_DEFAULTS)
    with pytest.raises(InputError, match="anchor_weight needs a backbone that trains through LoRA"):
        build_trainer(config)


def test_gradient_cache_gives_the_anchored_loss_and_gradients_of_the_full_batch(tmp_path: Path) -> None:
    encoder = M3Model.from_pretrained(TINY_M3)
    set_dropout(encoder.backbone, 0.0)
    encoder.backbone = add_lora(encoder.backbone, rank=4)  # type: ignore[assignment]
    torch.manual_seed(0)
    for name, parameter in encoder.backbone.named_parameters():
        if "lora_B" in name:  # trained adapters: the anchor term is not at its minimum
            torch.nn.init.normal_(parameter, std=0.05)
    loss = LossArguments(unified_finetuning=True, use_self_distill=True, anchor_weight=5.0)
    model = ContrastiveModel(encoder.train(), loss)
    inputs = make_inputs(tmp_path)
    full = model(**inputs)
    assert float(full.parts["anchor"]) > 1e-4
    full.loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    cached = cached_step(model, inputs, size=4)
    assert float(cached.loss) == pytest.approx(float(full.loss.detach()), abs=1e-5)
    got = gradients(model)
    assert got.keys() == expected.keys() and any("lora_" in name for name in got)
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=2e-5, rtol=1e-4, msg=name)
