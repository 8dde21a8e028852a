"""Where each query's own group sits in a score matrix.

In-batch scores are `[B, B·G]` with query i's group in columns `i·G … i·G+G−1` (positive first);
own-group scores are `[B, G]` with the group in columns `0 … G−1`.
"""

from __future__ import annotations

import torch


def group_offsets(scores: torch.Tensor, group_size: int, in_batch: bool) -> torch.Tensor:
    """Column of each query's positive: `i·G` in batch, 0 otherwise (`[B]`, long)."""
    rows = torch.arange(scores.shape[0], device=scores.device, dtype=torch.long)
    return rows * group_size if in_batch else torch.zeros_like(rows)


def own_group(scores: torch.Tensor, group_size: int, in_batch: bool) -> torch.Tensor:
    """The `[B, G]` block of each query's own passages."""
    if not in_batch:
        return scores
    columns = group_offsets(scores, group_size, True)[:, None] + torch.arange(
        group_size, device=scores.device
    )
    return scores.gather(1, columns)


def check_layout(scores: torch.Tensor, group_size: int, in_batch: bool) -> None:
    """A clear error when a score matrix does not match the batch layout."""
    expected = scores.shape[0] * group_size if in_batch else group_size
    if scores.dim() != 2 or scores.shape[1] != expected:
        raise ValueError(
            f"scores of shape {tuple(scores.shape)} do not fit {scores.shape[0]} queries × group size {group_size} "
            f"({'in-batch' if in_batch else 'own group'}: expected {expected} columns)"
        )
