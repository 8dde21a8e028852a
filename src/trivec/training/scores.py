"""Differentiable score matrices of queries against passages, for the three outputs and their ensemble.

`in_batch=True` scores every query against every passage of the batch (`[B, B·G]`; the positive of query i
is column `i·G`); `in_batch=False` only against its own group (`[B, G]`; the positive is column 0).
dense and sparse scores are dot products divided by the temperature (as FlagEmbedding); ColBERT is exact
MaxSim over real rows only — padding never takes part in the max, so a score does not depend on the rest of
the batch (trivec fixes docs/differences.md Q1 in training as at inference; on the fixture batch both readings agree to 1e-6).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from trivec.training.reps import Reps

MODES = ("dense", "sparse", "colbert")


def dot_scores(q: torch.Tensor, p: torch.Tensor, in_batch: bool = True) -> torch.Tensor:
    """`[B, D] × [B·G, D]` → `[B, B·G]` (in batch) or `[B, G]` (own group)."""
    if in_batch:
        return q @ p.transpose(0, 1)
    group = p.shape[0] // q.shape[0]
    return torch.einsum("bd,bgd->bg", q, p.view(q.shape[0], group, -1))


def colbert_scores(
    q: torch.Tensor, q_mask: torch.Tensor, p: torch.Tensor, p_mask: torch.Tensor, in_batch: bool = True
) -> torch.Tensor:
    """MaxSim `(1/N_q) Σ_i max_j ⟨q_i, p_j⟩` over real rows; `q [B, Tq, D]`, `p [B·G, Tp, D]`, masks bool."""
    q_mask, p_mask = q_mask.bool(), p_mask.bool()
    if in_batch:
        sims = torch.einsum("bid,njd->bnij", q, p)  # [B, N, Tq, Tp]
        sims = sims.masked_fill(~p_mask[None, :, None, :], torch.finfo(sims.dtype).min)
        best = sims.max(dim=-1).values  # [B, N, Tq]
        best = best * q_mask[:, None, :].to(best.dtype)
    else:
        batch, group = q.shape[0], p.shape[0] // q.shape[0]
        pg = p.view(batch, group, p.shape[1], p.shape[2])
        sims = torch.einsum("bid,bgjd->bgij", q, pg)
        sims = sims.masked_fill(~p_mask.view(batch, group, 1, -1), torch.finfo(sims.dtype).min)
        best = sims.max(dim=-1).values * q_mask[:, None, :].to(sims.dtype)
    counts = q_mask.sum(dim=-1, keepdim=True).clamp(min=1).to(best.dtype)
    return best.sum(dim=-1) / counts


def score_matrices(q: Reps, p: Reps, modes: Iterable[str], in_batch: bool = True) -> dict[str, torch.Tensor]:
    """Raw (not yet tempered) scores per mode."""
    out: dict[str, torch.Tensor] = {}
    for mode in modes:
        if mode == "dense":
            assert q.dense is not None and p.dense is not None, "dense outputs missing"
            out[mode] = dot_scores(q.dense, p.dense, in_batch)
        elif mode == "sparse":
            assert q.sparse is not None and p.sparse is not None, "sparse outputs missing"
            out[mode] = dot_scores(q.sparse, p.sparse, in_batch)
        elif mode == "colbert":
            assert q.colbert is not None and p.colbert is not None, "colbert outputs missing"
            assert q.colbert_mask is not None and p.colbert_mask is not None
            out[mode] = colbert_scores(q.colbert, q.colbert_mask, p.colbert, p.colbert_mask, in_batch)
        else:
            raise ValueError(f"unknown score mode {mode!r}; expected one of {', '.join(MODES)}")
    return out


def ensemble_scores(scores: Mapping[str, torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """`w_d·S_d + w_s·S_s + w_c·S_c` over the modes present (M3 default weights 1, 0.3, 1)."""
    total: torch.Tensor | None = None
    for mode, weight in zip(MODES, weights, strict=True):
        if mode in scores and weight:
            term = scores[mode] * float(weight)
            total = term if total is None else total + term
    if total is None:
        raise ValueError("the ensemble needs at least one score with a positive weight")
    return total
