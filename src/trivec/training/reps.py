"""`Reps`: what the encoder gives the losses for a set of texts — dense, sparse and ColBERT outputs.

Training keeps every output as a tensor with a leading batch dimension so that sub-batches can be
concatenated (gradient cache) and processes can exchange them (cross-device negatives) in one way for all
three. ColBERT vectors of different sub-batches / processes may differ in length: they are right-padded with
zero rows and `colbert_mask` marks the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F

FIELDS = ("dense", "sparse", "colbert", "colbert_mask", "reference")
NO_GRADIENT = ("colbert_mask", "reference")


@dataclass
class Reps:
    """dense `[N, H]`; sparse `[N, V]` bag-of-words vectors; colbert `[N, T, D]` with mask `[N, T]`;
    reference `[N, H]`: the dense output of the backbone as loaded (the anchor loss; no gradient)."""

    dense: torch.Tensor | None = None
    sparse: torch.Tensor | None = None
    colbert: torch.Tensor | None = None
    colbert_mask: torch.Tensor | None = None
    reference: torch.Tensor | None = None

    def __len__(self) -> int:
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                return int(value.shape[0])
        return 0

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """The tensors present, in a fixed order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def differentiable(self) -> list[tuple[str, torch.Tensor]]:
        """The float tensors that carry gradients (the mask and the reference do not)."""
        return [(name, value) for name, value in self.items() if name not in NO_GRADIENT]

    def map(self, fn: Callable[[str, torch.Tensor], torch.Tensor]) -> Reps:
        return replace(self, **{name: fn(name, value) for name, value in self.items()})

    def detach_leaf(self) -> Reps:
        """Detached copies that require grad: the loss is differentiated w.r.t. them (gradient cache)."""
        return self.map(lambda name, t: t if name in NO_GRADIENT else t.detach().requires_grad_(True))

    def slice(self, start: int, stop: int) -> Reps:
        return self.map(lambda _, t: t[start:stop])

    @staticmethod
    def cat(parts: Sequence[Reps]) -> Reps:
        """Concatenate along the batch; ColBERT parts are padded to the longest."""
        if len(parts) == 1:
            return parts[0]
        out = Reps()
        for name in FIELDS:
            values = [getattr(p, name) for p in parts]
            if values[0] is None:
                continue
            if name in ("colbert", "colbert_mask"):
                longest = max(v.shape[1] for v in values)
                values = [pad_rows(v, longest) for v in values]
            setattr(out, name, torch.cat(values))
        return out


def pad_rows(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Right-pad dim 1 of `[N, T, ...]` with zeros (False for a bool mask) to `length`."""
    missing = length - tensor.shape[1]
    if missing <= 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 2) + [0, missing]
    if tensor.dtype == torch.bool:
        return F.pad(tensor.to(torch.uint8), pad).bool()
    return F.pad(tensor, pad)
