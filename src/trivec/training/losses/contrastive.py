"""`ContrastiveLoss`: the loss of one score matrix — InfoNCE, or its teacher-distillation version."""

from __future__ import annotations

import torch
from torch import nn

from trivec.training.losses.infonce import InfoNCELoss
from trivec.training.losses.kl_div import SoftLabelDistillLoss
from trivec.training.losses.m3_kd import M3KDLoss

KD_LOSSES = ("kl_div", "m3_kd_loss")


def teacher_targets(teacher_scores: torch.Tensor, num_queries: int) -> torch.Tensor:
    """`softmax(teacher scores)` per group, `[B, G]` from the flat `[B·G]` scores (no temperature)."""
    if teacher_scores.numel() % num_queries:
        raise ValueError(f"{teacher_scores.numel()} teacher scores do not split into {num_queries} groups")
    return torch.softmax(teacher_scores.view(num_queries, -1).float(), dim=-1)


class ContrastiveLoss(nn.Module):
    """The base loss `L_x` (InfoNCE, or a distillation loss given teacher scores; docs/training.md) for tempered scores `S_x`.

    Without teacher scores: InfoNCE (in-batch or own-group). With them: `kl_div` (soft-label CE on the
    own group + InfoNCE) or `m3_kd_loss` (listwise), for every dataset kind.
    """

    def __init__(self, kd_loss_type: str = "kl_div") -> None:
        super().__init__()
        if kd_loss_type not in KD_LOSSES:
            raise ValueError(f"kd_loss_type must be one of {', '.join(KD_LOSSES)}, got {kd_loss_type!r}")
        self.kd_loss_type = kd_loss_type
        self.infonce = InfoNCELoss()
        self.kd: nn.Module = SoftLabelDistillLoss() if kd_loss_type == "kl_div" else M3KDLoss()

    def forward(
        self,
        scores: torch.Tensor,
        group_size: int,
        in_batch: bool = True,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`targets [B, G]`: teacher probabilities (see `teacher_targets`), or None."""
        if targets is None:
            return self.infonce(scores, group_size, in_batch)
        return self.kd(scores, targets.to(scores.dtype), group_size, in_batch)
