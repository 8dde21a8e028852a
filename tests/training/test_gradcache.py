"""Gradient cache: sub-batch encoding gives the loss and gradients of the whole batch."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import TINY_M3
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.models import M3Model
from trivec.training.arguments import DataArguments, LossArguments
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset
from trivec.training.gradcache import grad_cache_step, split_features
from trivec.training.modeling import ContrastiveModel, set_dropout
from trivec.training.reps import Reps


def make_model(dropout: float = 0.0, **loss: Any) -> ContrastiveModel:
    encoder = M3Model.from_pretrained(TINY_M3)
    set_dropout(encoder.backbone, dropout)
    return ContrastiveModel(encoder.train(), LossArguments(**loss))


def make_inputs(tmp_path: Path, distill: bool = False, in_batch: bool = True) -> dict[str, Any]:
    rows = synthetic_rows(6, negatives=3)
    if distill:
        for i, row in enumerate(rows):
            row["pos_scores"] = [2.0 + i / 10]
            row["neg_scores"] = [0.5, -1.0, 0.1]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    data = DataArguments(train_data=[str(path)], train_group_size=3, knowledge_distillation=distill)
    dataset = ContrastiveDataset(data, batch_size=6, in_batch_negatives=in_batch, seed=1)
    collator = ContrastiveCollator(M3Model.from_pretrained(TINY_M3).tokenizer, 32, 128)
    return collator(dataset[0])


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def cached_step(model: ContrastiveModel, inputs: dict[str, Any], size: int) -> Any:
    return grad_cache_step(
        model,
        inputs,
        size,
        backward=lambda loss: loss.backward(),
        no_sync=contextlib.nullcontext,
        autocast=contextlib.nullcontext,
        unwrap=lambda m: m,
    )


@pytest.mark.parametrize(
    ("loss", "distill", "in_batch"),
    [
        ({}, False, True),
        ({"kd_loss_type": "m3_kd_loss"}, True, True),
        ({"unified_finetuning": True, "use_self_distill": True}, False, True),
        ({"unified_finetuning": True, "use_self_distill": True}, True, False),
    ],
    ids=["dense", "dense-m3kd", "unified-self-distill", "unified-kd-own-group"],
)
def test_gradient_cache_equals_the_full_batch(
    tmp_path: Path, loss: dict[str, Any], distill: bool, in_batch: bool
) -> None:
    inputs = make_inputs(tmp_path, distill, in_batch)
    model = make_model(**loss)
    full = model(**inputs)
    full.loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    cached = cached_step(model, inputs, size=4)  # 6 queries + 18 passages in 2 + 5 sub-batches
    assert float(cached.loss) == pytest.approx(float(full.loss.detach()), abs=1e-5)
    got = gradients(model)
    assert got.keys() == expected.keys() and len(got) > 10
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=2e-5, rtol=1e-4, msg=name)


def test_gradient_cache_replays_dropout(tmp_path: Path) -> None:
    """With dropout on, pass 3 must reuse pass 1's masks: the result equals encoding the same sub-batches
    in the same order with a graph, from the same random state."""
    inputs = make_inputs(tmp_path)
    model = make_model(dropout=0.1)
    torch.manual_seed(123)
    chunks = [("query", c) for c in split_features(inputs["query"], 4)]
    chunks += [("passage", c) for c in split_features(inputs["passage"], 4)]
    reps = [model(**{side: c}, encode_only=True) for side, c in chunks]
    n_query = len(split_features(inputs["query"], 4))
    out = model.compute_loss(Reps.cat(reps[:n_query]), Reps.cat(reps[n_query:]))
    out.loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    cached = cached_step(model, inputs, size=4)
    assert float(cached.loss) == pytest.approx(float(out.loss.detach()), abs=1e-5)
    for name, grad in expected.items():
        torch.testing.assert_close(gradients(model)[name], grad, atol=2e-5, rtol=1e-4, msg=name)


def test_split_features_trims_each_sub_batch_to_its_longest_row() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    chunks = split_features({"input_ids": mask * 7, "attention_mask": mask}, 2)
    assert [c["input_ids"].shape for c in chunks] == [(2, 4), (1, 3)]


def test_gradient_checkpointing_gives_the_same_gradients(tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path)
    model = make_model(unified_finetuning=True)
    model(**inputs).loss.backward()
    expected = gradients(model)
    model.zero_grad(set_to_none=True)
    model.gradient_checkpointing_enable()
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.encoder.backbone.modules())
    model(**inputs).loss.backward()
    for name, grad in expected.items():
        torch.testing.assert_close(gradients(model)[name], grad, atol=1e-6, rtol=1e-5, msg=name)
