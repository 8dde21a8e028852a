"""Sentence pooling of token states: CLS, mean, last token, and MCLS (several CLS slots averaged)."""

from __future__ import annotations

from typing import Literal, get_args

import torch

PoolingMode = Literal["cls", "mean", "last_token"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)


def check_pooling_mode(mode: str) -> PoolingMode:
    """Validate a pooling mode name, with an error that lists the valid ones."""
    if mode not in POOLING_MODES:
        raise ValueError(f"unknown pooling mode {mode!r}; expected one of {', '.join(POOLING_MODES)}")
    return mode  # type: ignore[return-value]


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: PoolingMode) -> torch.Tensor:
    """Pool `hidden [B, L, H]` to `[B, H]`; `attention_mask [B, L]` marks real tokens (right padding)."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "mean":
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    # last token: the last real position of each row (left padding is also handled)
    if bool((attention_mask[:, -1] == 1).all()):
        return hidden[:, -1]
    last = attention_mask.sum(dim=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def pool_cls_slots(hidden: torch.Tensor, cls_slots: torch.Tensor) -> torch.Tensor:
    """MCLS: average the states at the positions flagged in `cls_slots [B, L]` (bool)."""
    weights = cls_slots.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
