"""`InfoNCELoss`: cross-entropy of each query's positive against the other passages in its row."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trivec.training.losses.groups import check_layout, group_offsets


class InfoNCELoss(nn.Module):
    """`−mean_i log softmax(S_i)[pos(i)]` on tempered scores (FlagEmbedding's base loss).

    In batch (`[B, B·G]`) every other passage of the batch is a negative — the hard negatives of query i
    and all passages of the other queries; own group (`[B, G]`) only the query's hard negatives are.
    """

    def forward(self, scores: torch.Tensor, group_size: int, in_batch: bool = True) -> torch.Tensor:
        check_layout(scores, group_size, in_batch)
        return F.cross_entropy(scores, group_offsets(scores, group_size, in_batch))
