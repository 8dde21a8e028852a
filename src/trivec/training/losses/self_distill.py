"""`SelfDistillLoss`: each M3 score learns from the (detached) ensemble of all three (as FlagEmbedding's M3 self-distillation)."""

from __future__ import annotations

import torch
from torch import nn

from trivec.training.losses.kl_div import soft_label_ce


class SelfDistillLoss(nn.Module):
    """`−mean_b Σ_j softmax(S_e)_bj · log softmax(S)_bj` over the same columns as the student's rows.

    With own-group scores (`no_in_batch_neg` data) teacher and student are both `[B, G]` — the intended
    semantics; the reference reduces the ensemble to one column there (docs/differences.md Q14) and so teaches every
    passage as if it were the positive.
    """

    def forward(self, student: torch.Tensor, ensemble: torch.Tensor) -> torch.Tensor:
        if student.shape != ensemble.shape:
            raise ValueError(
                f"student {tuple(student.shape)} and teacher {tuple(ensemble.shape)} scores differ"
            )
        return soft_label_ce(student, torch.softmax(ensemble.detach(), dim=-1))
