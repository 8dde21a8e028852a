"""LoRA for a cross-encoder: adapters on the encoder layers, the new head (pooler, classifier) trained whole.

The head of a reranker started from an encoder is new, so it cannot be a low-rank update of anything: it goes
into peft's `modules_to_save` and trains in full, and the adapters are restricted to the encoder's layers (a
BERT pooler is also a `dense`, and must not get one). peft saves adapters and head together in `lora/`, a few
MB that re-create the reranker on the base encoder (`trivec.models.reranker_small`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from trivec.errors import CheckpointError
from trivec.models.lora import quiet_peft

HEAD_MODULES = ("classifier", "pooler")  # BERT: bert.pooler + classifier; XLM-R: classifier (dense, out_proj)


def head_modules(model: torch.nn.Module) -> list[str]:
    """The head modules `model` has (saved and trained whole under LoRA)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [name for name in HEAD_MODULES if name in names]


def is_head_parameter(name: str) -> bool:
    """True for a parameter of the head (pooler or classifier), under peft's wrapping or not."""
    return any(f"{head}." in name or name.startswith(head) for head in HEAD_MODULES)


def add_reranker_lora(
    model: torch.nn.Module,
    rank: int,
    alpha: float | None = None,
    target_modules: Sequence[str] = ("query", "key", "value", "dense"),
) -> torch.nn.Module:
    """Wrap a sequence classifier: LoRA adapters on `target_modules` of the encoder layers only, the head in
    `modules_to_save` (trained whole, saved with the adapters)."""
    from peft import LoraConfig, get_peft_model

    if rank < 1:
        raise CheckpointError(f"lora_rank must be a positive integer, got {rank}")
    names = "|".join(re.escape(name) for name in target_modules)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,  # type: ignore[arg-type]  # peft accepts floats
        lora_dropout=0.0,
        target_modules=rf".*\.layer\.\d+\..*\b({names})$",
        modules_to_save=head_modules(model),
        bias="none",
    )
    try:
        with quiet_peft():
            return get_peft_model(model, config)
    except ValueError as exc:
        raise CheckpointError(f"cannot add LoRA adapters to {list(target_modules)}: {exc}") from exc


def trainable_summary(model: torch.nn.Module) -> dict[str, Any]:
    """Trainable and total parameter counts (logged: what LoRA leaves to train)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}
