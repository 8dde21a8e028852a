"""`SoftLabelDistillLoss` (FlagEmbedding `kd_loss_type="kl_div"`): follow a teacher's ranking of the group."""

from __future__ import annotations

import torch
from torch import nn

from trivec.training.losses.groups import own_group
from trivec.training.losses.infonce import InfoNCELoss


def soft_label_ce(student: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`−mean_b Σ_k T_bk log softmax(S)_bk` — cross-entropy to soft labels (the KL divergence plus the
    teacher's entropy, a constant; the reference calls it kl_div)."""
    return -(targets * torch.log_softmax(student, dim=-1)).sum(dim=-1).mean()


class SoftLabelDistillLoss(nn.Module):
    """`D_P(own-group scores) + InfoNCE(scores)` with `P = softmax(teacher scores)` per group (FlagEmbedding's `kl_div`).

    Teacher scores are raw logits (a cross-encoder's), softmaxed without temperature as the reference does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.infonce = InfoNCELoss()

    def forward(
        self, scores: torch.Tensor, teacher_targets: torch.Tensor, group_size: int, in_batch: bool = True
    ) -> torch.Tensor:
        """`teacher_targets [B, G]`: the softmax of the teacher's scores of each query's group."""
        student = own_group(scores, group_size, in_batch)
        return soft_label_ce(student, teacher_targets) + self.infonce(scores, group_size, in_batch)
