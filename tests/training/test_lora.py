"""LoRA training of the backbone (peft): only adapters and heads change, the saved model is a plain
checkpoint with the adapters merged, and `lora/` re-applied to the base gives the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from trivec.errors import CheckpointError, InputError
from trivec.models import M3Model
from trivec.models.lora import LORA_DIR, add_lora, is_lora, merge_adapter, merged_copy
from trivec.training.arguments import M3_DEFAULTS, ModelArguments, build_config
from trivec.training.train import build_trainer, train_contrastive


def test_lora_options_are_validated_where_defined() -> None:
    with pytest.raises(InputError, match="lora_rank must be a positive integer"):
        ModelArguments(lora_rank=0).validate()
    with pytest.raises(InputError, match="add backbone to train_parts"):
        ModelArguments(lora_rank=4, train_parts=["heads"]).validate()
    with pytest.raises(InputError, match="lora_dropout"):
        ModelArguments(lora_rank=4, lora_dropout=1.5).validate()
    assert ModelArguments(lora_target_modules="query, value").lora_target_modules == ["query", "value"]  # type: ignore[arg-type]


def test_new_adapters_change_nothing_and_merge_to_the_same_model() -> None:
    model = M3Model.from_pretrained(TINY_M3, heads="none")
    ids = model.tokenizer(["a small river"], return_tensors="pt")
    before = model(ids["input_ids"], ids["attention_mask"]).dense
    model.backbone = add_lora(model.backbone, rank=4)  # type: ignore[assignment]
    assert is_lora(model.backbone)
    after = model(ids["input_ids"], ids["attention_mask"]).dense
    torch.testing.assert_close(before, after)
    assert not is_lora(merged_copy(model.backbone)) and is_lora(
        model.backbone
    )  # the live model stays wrapped
    with pytest.raises(CheckpointError, match="cannot add LoRA adapters"):
        add_lora(M3Model.from_pretrained(TINY_M3, heads="none").backbone, rank=2, target_modules=["no_such"])


def test_lora_run_trains_adapters_and_heads_only_and_saves_a_plain_model(tmp_path: Path) -> None:
    data = [str(write_jsonl(tmp_path / "train.jsonl", synthetic_rows(16)))]
    config = build_config(
        {},
        quick_overrides(tmp_path, data, lora_rank=4, max_steps=3, learning_rate=1e-2),
        defaults=M3_DEFAULTS,
    )
    trainer = build_trainer(config)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "_head." in n for n in trainable)
    base = {k: v.clone() for k, v in M3Model.from_pretrained(TINY_M3).backbone.state_dict().items()}
    out = train_contrastive(config)
    saved = load_file(out / "model.safetensors")
    assert set(saved) <= set(base) | {"pooler.dense.weight", "pooler.dense.bias"}
    changed = [k for k in saved if k in base and not torch.equal(saved[k], base[k])]
    assert changed and all(any(t in k for t in ("query", "key", "value", "dense")) for k in changed)
    assert not any("embeddings" in k for k in changed)
    loaded = M3Model.from_pretrained(out, heads="require")  # a plain checkpoint, every tool loads it
    assert not is_lora(loaded.backbone)
    # the shipped form: the adapters alone, merged into the untouched base, give the saved weights
    assert (out / LORA_DIR / "adapter_model.safetensors").is_file()
    remerged = merge_adapter(M3Model.from_pretrained(TINY_M3, heads="none").backbone, out / LORA_DIR)
    for key, value in remerged.state_dict().items():
        if key in saved:
            torch.testing.assert_close(value, saved[key], rtol=1e-5, atol=1e-6)


def test_merge_adapter_refuses_a_folder_without_adapters(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no adapter_config\.json"):
        merge_adapter(M3Model.from_pretrained(TINY_M3, heads="none").backbone, tmp_path)
