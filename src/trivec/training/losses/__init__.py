"""Contrastive losses, one module per file (InfoNCE, teacher distillation, M3 unified + self-distillation)."""

from trivec.training.losses.contrastive import ContrastiveLoss, teacher_targets
from trivec.training.losses.infonce import InfoNCELoss
from trivec.training.losses.kl_div import SoftLabelDistillLoss
from trivec.training.losses.m3 import M3UnifiedLoss
from trivec.training.losses.m3_kd import M3KDLoss
from trivec.training.losses.self_distill import SelfDistillLoss

__all__ = [
    "ContrastiveLoss",
    "InfoNCELoss",
    "M3KDLoss",
    "M3UnifiedLoss",
    "SelfDistillLoss",
    "SoftLabelDistillLoss",
    "teacher_targets",
]
