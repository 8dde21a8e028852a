"""`ContrastiveModel`: an `M3Model` plus the loss of contrastive (dense) or unified (M3) fine-tuning.

`forward(query=..., passage=..., teacher_scores=...)` encodes both sides, gathers them across processes when
cross-device negatives are on, scores queries against passages (divided by the temperature) and returns the
loss. `forward(query=...)` / `forward(passage=...)` alone with `encode_only=True` returns the outputs
(`Reps`) — the gradient cache encodes sub-batches that way through the DDP wrapper.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trivec.errors import InputError
from trivec.models import M3Model
from trivec.models.lora import is_lora, trainable_adapters_only
from trivec.training.arguments import PARTS, LossArguments
from trivec.training.distributed import gather_reps, gather_tensor, world
from trivec.training.losses import ContrastiveLoss, M3UnifiedLoss, teacher_targets
from trivec.training.reps import Reps
from trivec.training.scores import score_matrices


@dataclass
class ContrastiveOutput:
    """loss (a scalar with graph); parts: detached components for the log; scores: tempered matrices;
    gradient_scale: multiply the loss by it before `backward` (world size under cross-device negatives)."""

    loss: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    gradient_scale: float = 1.0

    def __getitem__(self, key: str) -> Any:  # the Trainer reads outputs["loss"]
        return getattr(self, key)


class ContrastiveModel(nn.Module):
    """Encoder + heads + contrastive loss; `unified` trains dense, sparse and ColBERT together.

    `train_parts` (subset of `backbone`, `sparse`, `colbert`; default all) chooses what trains: the other
    parameters get `requires_grad=False`, so the Trainer's optimizer leaves them out and they are saved as
    loaded. With a frozen backbone no autograd graph is recorded through it (its inputs are token ids), so
    only the heads' activations are kept, and gradient checkpointing is skipped.
    """

    def __init__(
        self,
        encoder: M3Model,
        loss: LossArguments | None = None,
        train_parts: Collection[str] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.config_loss = loss or LossArguments()
        self.unified = self.config_loss.unified_finetuning
        if self.unified:
            encoder.require(sparse=True, colbert=True)
        self.modes: tuple[str, ...] = ("dense", "sparse", "colbert") if self.unified else ("dense",)
        self.temperature = float(self.config_loss.temperature)
        self.loss_fn: nn.Module = (
            M3UnifiedLoss(
                self.config_loss.kd_loss_type,
                self.config_loss.ensemble_weights,
                self.config_loss.loss_weights,
                self.config_loss.self_distill_weights,
            )
            if self.unified
            else ContrastiveLoss(self.config_loss.kd_loss_type)
        )
        self.train_parts = self._freeze(PARTS if train_parts is None else tuple(train_parts))
        self.anchor_weight = float(self.config_loss.anchor_weight)
        if self.anchor_weight and not (is_lora(encoder.backbone) and "backbone" in self.train_parts):
            raise InputError(
                "anchor_weight needs a backbone that trains through LoRA adapters (lora_rank > 0): the anchor "
                "is the backbone's own output with the adapters switched off"
            )

    def _freeze(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """Freeze every part not in `wanted` (and heads the loss never sees); returns the parts that train."""
        unknown = [p for p in wanted if p not in PARTS]
        if unknown:
            raise InputError(f"unknown train part(s) {', '.join(unknown)}; allowed: {', '.join(PARTS)}")
        modules: dict[str, nn.Module | None] = {
            "backbone": self.encoder.backbone,
            "sparse": self.encoder.sparse_head,
            "colbert": self.encoder.colbert_head,
        }
        training: list[str] = []
        for name, module in modules.items():
            if module is None:
                continue
            trains = name in wanted and (self.unified or name == "backbone")  # dense loss: heads unused
            module.requires_grad_(trains)
            if trains and is_lora(module):
                trainable_adapters_only(module)
            if trains:
                training.append(name)
        if not training:
            raise InputError(
                f"nothing to train: train_parts {','.join(wanted)}, but dense-only training uses no "
                "sparse/ColBERT head; train the backbone, or use unified M3 fine-tuning (`trivec train m3`), "
                "which also creates missing heads"
            )
        return tuple(training)

    @property
    def backbone_frozen(self) -> bool:
        """True when the backbone does not train (heads only)."""
        return "backbone" not in self.train_parts

    # ------------------------------------------------------------------ encoding
    def encode(self, features: Mapping[str, torch.Tensor], reference: bool = True) -> Reps:
        """Run the encoder (and the heads the loss uses) on one tokenised side; `reference`: also the anchor
        loss's reference vectors when it is on (the gradient cache's replay pass has them already)."""
        input_ids, attention_mask = features["input_ids"], features["attention_mask"]
        out = self.encoder(
            input_ids,
            attention_mask,
            dense=True,
            sparse="sparse" in self.modes,
            colbert="colbert" in self.modes,
        )
        reps = Reps(dense=out.dense)
        if out.token_weights is not None:
            reps.sparse = self.encoder.sparse_vocab_vectors(input_ids, out.token_weights)
        if out.colbert is not None:
            reps.colbert = out.colbert
            reps.colbert_mask = attention_mask[:, 1:].bool()
        if reference and self.anchor_weight and self.training:
            reps.reference = self._reference(input_ids, attention_mask)
        return reps

    def _reference(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The dense output of the backbone as loaded: adapters off, no dropout, no gradient."""
        self.encoder.eval()
        try:
            backbone: Any = self.encoder.backbone  # a peft model (checked in __init__)
            with torch.no_grad(), backbone.disable_adapter():
                dense = self.encoder(input_ids, attention_mask, dense=True).dense
        finally:
            self.encoder.train()
        assert dense is not None
        return dense

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        q: Reps,
        p: Reps,
        teacher_scores: torch.Tensor | None = None,
        in_batch_negatives: bool = True,
        step: int = 0,
    ) -> ContrastiveOutput:
        """Loss of one batch from encoded queries `q [B]` and passages `p [B·G]` (layout of the collator)."""
        if len(q) == 0 or len(p) % len(q):
            raise ValueError(f"{len(p)} passages do not form groups for {len(q)} queries")
        group_size = len(p) // len(q)
        q, p = _float32(q), _float32(p)  # scores and softmax in fp32 even when the encoder runs in bf16/fp16
        _, size = world()
        gathered = self.config_loss.negatives_cross_device and size > 1
        if gathered:
            q, p = gather_reps(q), gather_reps(p)
            if teacher_scores is not None:
                teacher_scores = gather_tensor(teacher_scores, keep_grad=False)
        scores = {
            mode: value / self.temperature
            for mode, value in score_matrices(q, p, self.modes, in_batch_negatives).items()
        }
        targets = teacher_targets(teacher_scores, len(q)) if teacher_scores is not None else None
        if self.unified:
            distill = self.config_loss.use_self_distill and step >= self.config_loss.self_distill_start_step
            loss, parts = self.loss_fn(scores, group_size, in_batch_negatives, targets, self_distill=distill)
        else:
            loss = self.loss_fn(scores["dense"], group_size, in_batch_negatives, targets)
            parts = {}
        if q.reference is not None and p.reference is not None:
            parts["anchor"] = anchor_loss(q, p)
            loss = loss + self.anchor_weight * parts["anchor"]
        return ContrastiveOutput(
            loss=loss,
            parts={k: v.detach() for k, v in parts.items()},
            scores=scores,
            gradient_scale=float(size) if gathered else 1.0,
        )

    def forward(
        self,
        query: Mapping[str, torch.Tensor] | None = None,
        passage: Mapping[str, torch.Tensor] | None = None,
        teacher_scores: torch.Tensor | None = None,
        in_batch_negatives: bool = True,
        step: int = 0,
        encode_only: bool = False,
        reference: bool = True,
    ) -> ContrastiveOutput | Reps:
        if encode_only:
            if (query is None) == (passage is None):
                raise ValueError("encode_only needs exactly one of query / passage")
            features = query if query is not None else passage
            assert features is not None
            return self.encode(features, reference)
        if query is None or passage is None:
            raise ValueError("the loss needs both query and passage features")
        return self.compute_loss(
            self.encode(query), self.encode(passage), teacher_scores, in_batch_negatives, step
        )

    # ------------------------------------------------------------------ Trainer hooks
    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict | None = None, **kwargs: Any
    ) -> None:
        """Recompute the encoder's activations in backward (non-reentrant: works with frozen parts and DDP).

        A frozen backbone records no graph, so there is nothing to recompute: checkpointing stays off.
        `kwargs` (`every_n_layers`, `offload`: what Trainer passes in transformers ≥ 5.x) go to the backbone.
        """
        if self.backbone_frozen:
            return
        options = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        extra = {k: v for k, v in kwargs.items() if (k, v) not in (("every_n_layers", 1), ("offload", False))}
        backbone = self.encoder.backbone
        if hasattr(backbone, "activation_checkpointing_enable"):
            backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=options, **extra)
        else:
            backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options, **extra)

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """The name the Trainer calls in recent transformers; see `gradient_checkpointing_enable`."""
        self.gradient_checkpointing_enable(
            activation_checkpointing_kwargs, every_n_layers=every_n_layers, offload=offload
        )

    def gradient_checkpointing_disable(self) -> None:
        backbone = self.encoder.backbone
        if hasattr(backbone, "activation_checkpointing_disable"):
            backbone.activation_checkpointing_disable()
        else:
            backbone.gradient_checkpointing_disable()

    activation_checkpointing_disable = gradient_checkpointing_disable


def anchor_loss(q: Reps, p: Reps) -> torch.Tensor:
    """Mean 1 - cosine between the trained dense vectors of all texts of the batch and their references."""
    assert q.dense is not None and p.dense is not None and q.reference is not None and p.reference is not None
    trained = torch.cat([q.dense, p.dense])
    reference = torch.cat([q.reference, p.reference])
    return (1 - torch.nn.functional.cosine_similarity(trained, reference, dim=-1)).mean()


def _float32(reps: Reps) -> Reps:
    return reps.map(lambda _, t: t.float() if t.is_floating_point() else t)


def set_dropout(module: nn.Module, probability: float) -> int:
    """Set every `nn.Dropout` of `module` to `probability` (HF encoders read `.p` in attention too)."""
    count = 0
    for child in module.modules():
        if isinstance(child, nn.Dropout):
            child.p = probability
            count += 1
    return count
