"""An optimizer whose head parameters learn at their own rate, for the trainers that train a (new) head on a
pre-trained encoder: a new head needs a far larger step than the encoder or its LoRA adapters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import Trainer


def head_rate_optimizer(
    trainer: Trainer, model: torch.nn.Module, head_learning_rate: float, is_head: Callable[[str], bool]
) -> torch.optim.Optimizer:
    """The trainer's optimizer class and settings over up to four parameter groups — encoder or head (by
    parameter name, `is_head`), with or without weight decay — the head's at `head_learning_rate` (the
    scheduler scales every group alike)."""
    decay = set(trainer.get_decay_parameter_names(model))
    groups: list[dict[str, Any]] = []
    for head in (False, True):
        for decayed in (True, False):
            params = [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and is_head(n) == head and (n in decay) == decayed
            ]
            if params:
                group: dict[str, Any] = {
                    "params": params,
                    "weight_decay": trainer.args.weight_decay if decayed else 0.0,
                }
                if head:
                    group["lr"] = head_learning_rate
                groups.append(group)
    optimizer_cls, optimizer_kwargs = trainer.get_optimizer_cls_and_kwargs(
        trainer.args,
        model,  # type: ignore[arg-type]  # any module: read only by a few optimizers
    )
    return optimizer_cls(groups, **optimizer_kwargs)
