"""`M3UnifiedLoss`: BGE-M3's unified fine-tuning loss with self-knowledge distillation (as FlagEmbedding's `EncoderOnlyEmbedderM3Model`; formula in docs/training.md).

    L = ( λ_d·L(S_d) + L(S_e) + λ_s·L(S_s) + λ_c·L(S_c) ) / 4,        S_e = w_d·S_d + w_s·S_s + w_c·S_c
    with self-distillation:  L = ( L + ( μ_d·D(S_d) + μ_s·D(S_s) + μ_c·D(S_c) ) / 3 ) / 2

`L` is `ContrastiveLoss` (InfoNCE or teacher distillation), `D` is `SelfDistillLoss` with the detached
ensemble as teacher; defaults w = (1, 0.3, 1), λ = (1, 0.1, 1), μ = λ (as the reference). Every term uses the same columns, so own-group
(`no_in_batch_neg`) batches work too (quirks Q13, Q14 fixed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from trivec.training.losses.contrastive import ContrastiveLoss
from trivec.training.losses.self_distill import SelfDistillLoss
from trivec.training.scores import MODES, ensemble_scores


class M3UnifiedLoss(nn.Module):
    """Dense, sparse, ColBERT and ensemble losses, optionally with self-distillation."""

    def __init__(
        self,
        kd_loss_type: str = "kl_div",
        ensemble_weights: Sequence[float] = (1.0, 0.3, 1.0),
        loss_weights: Sequence[float] = (1.0, 0.1, 1.0),
        self_distill_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.base = ContrastiveLoss(kd_loss_type)
        self.self_distill = SelfDistillLoss()
        self.ensemble_weights = tuple(float(w) for w in ensemble_weights)
        self.loss_weights = dict(zip(MODES, (float(w) for w in loss_weights), strict=True))
        distill = loss_weights if self_distill_weights is None else self_distill_weights
        self.self_distill_weights = dict(zip(MODES, (float(w) for w in distill), strict=True))

    def forward(
        self,
        scores: Mapping[str, torch.Tensor],
        group_size: int,
        in_batch: bool = True,
        targets: torch.Tensor | None = None,
        self_distill: bool = False,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """`scores`: tempered `dense`, `sparse`, `colbert` matrices; returns (loss, its parts)."""
        missing = [m for m in MODES if m not in scores]
        if missing:
            raise ValueError(
                f"unified loss needs dense, sparse and colbert scores; missing {', '.join(missing)}"
            )
        ensemble = ensemble_scores(scores, self.ensemble_weights)
        parts = {mode: self.base(scores[mode], group_size, in_batch, targets) for mode in MODES}
        parts["ensemble"] = self.base(ensemble, group_size, in_batch, targets)
        loss = (sum(self.loss_weights[m] * parts[m] for m in MODES) + parts["ensemble"]) / 4
        if self_distill:
            distill = {m: self.self_distill(scores[m], ensemble) for m in MODES}
            parts.update({f"self_distill_{m}": value for m, value in distill.items()})
            loss = (loss + sum(self.self_distill_weights[m] * distill[m] for m in MODES) / 3) / 2
        return loss, parts
