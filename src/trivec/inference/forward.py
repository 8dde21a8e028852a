"""The forward pass the `Embedder` runs per batch, as an interface: torch (`M3Model`) or onnxruntime.

A backend takes a right-padded batch and returns the tensors `M3Model.forward` returns (`M3Output`: dense
`[B, H]`, sparse token weights `[B, L]`, ColBERT vectors `[B, L−1, D]` with padding rows zeroed), so that
everything after the forward pass — lexical weights per token id, ColBERT rows per text, MCLS slots — is
the same code whichever backend ran it. `M3Model` itself is the torch backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: the command line imports this module before torch
    import torch

    from trivec.models.m3 import M3Output


class BatchForward(Protocol):
    """One padded batch → `M3Output`; `require` raises `UnsupportedOutputError` for an output it cannot give."""

    def require(self, sparse: bool = False, colbert: bool = False) -> None: ...

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        cls_slots: torch.Tensor | None = None,
    ) -> M3Output: ...
