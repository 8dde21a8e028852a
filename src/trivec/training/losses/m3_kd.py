"""`M3KDLoss` (FlagEmbedding `kd_loss_type="m3_kd_loss"`, used to train bge-m3): listwise distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trivec.training.losses.groups import check_layout, group_offsets


class M3KDLoss(nn.Module):
    """`Σ_k mean_b [ P_bk · CE(S_b + M_k, target b·G + k) ]` (FlagEmbedding's `m3_kd_loss`; `M_k` masks the group members before k).

    Passage k of each group is in turn the target, weighted by its teacher probability, and the group members
    before it are removed from the softmax (a Plackett-Luce-like listwise loss). Works on in-batch scores and —
    unlike the reference, which raises IndexError there (docs/differences.md Q13) — on own-group scores, where the targets
    are simply `k`.
    """

    def forward(
        self, scores: torch.Tensor, teacher_targets: torch.Tensor, group_size: int, in_batch: bool = True
    ) -> torch.Tensor:
        check_layout(scores, group_size, in_batch)
        offsets = group_offsets(scores, group_size, in_batch)
        masked = scores
        total = scores.new_zeros(())
        for k in range(group_size):
            targets = offsets + k
            losses = F.cross_entropy(masked, targets, reduction="none")
            total = total + (teacher_targets[:, k] * losses).mean()
            removed = torch.zeros_like(scores, dtype=torch.bool).scatter(1, targets[:, None], True)
            masked = masked.masked_fill(removed, torch.finfo(scores.dtype).min)
        return total
