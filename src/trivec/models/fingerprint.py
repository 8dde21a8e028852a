"""What an index's fingerprint (`trivec.retrieval.identity`) reads of a model's float32 weights.

Per tensor, in name order: its name, shape, first `FINGERPRINT_SAMPLE` values (4 decimals) and float64 sum
(4 significant digits). `weights_sample` reads them from a model's tensors; `SampleBuilder` from the values of
one tensor given a chunk at a time (`trivec.models.lean_load` reads a safetensors file so, never holding a
float32 copy of the model): both give the same bytes, chunk boundaries and float64 sums included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

FINGERPRINT_SAMPLE = 64  # leading values per tensor that a model's fingerprint reads
SUM_CHUNK = 1 << 20  # values summed at a time (the flat tensor split at multiples of this)


@dataclass(frozen=True)
class TensorSample:
    """One tensor's part of the fingerprint."""

    shape: tuple[int, ...]
    head: bytes  # the leading values as float64, rounded to 4 decimals
    total: str  # the float64 sum, 4 significant digits

    def encode(self, name: str) -> bytes:
        return name.encode() + str(self.shape).encode() + self.head + self.total.encode()


class SampleBuilder:
    """A `TensorSample` from the flat float32 values of one tensor, given as the consecutive chunks that
    `values.split(SUM_CHUNK)` makes (the last may be shorter)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self._head: np.ndarray | None = None
        self._total: torch.Tensor | int = 0  # as Python's sum() starts: 0 + Σ chunk sums, in order

    def add(self, part: torch.Tensor) -> None:
        if self._head is None:
            self._head = part[:FINGERPRINT_SAMPLE].cpu().numpy().astype(np.float64)
        self._total = self._total + part.double().sum()

    def sample(self) -> TensorSample:
        head = self._head if self._head is not None else np.zeros(0, dtype=np.float64)
        return TensorSample(self.shape, np.round(head, 4).tobytes(), f"{float(self._total):.4e}")


def tensor_sample(tensor: torch.Tensor) -> TensorSample:
    """The `TensorSample` of a tensor (its values as float32)."""
    values = tensor.detach().float().reshape(-1)
    builder = SampleBuilder(tuple(tensor.shape))
    # a million values at a time: widening a whole 250k-row embedding table at once would allocate 768 MB
    for part in values.split(SUM_CHUNK):
        builder.add(part)
    return builder.sample()


def join_samples(samples: Mapping[str, TensorSample]) -> bytes:
    """The fingerprint's bytes of named samples, in name order."""
    return b"".join(samples[name].encode(name) for name in sorted(samples))


def weights_sample(model: nn.Module) -> bytes:
    """What a model's fingerprint reads of its weights (as float32): every tensor of its `state_dict`."""
    return join_samples({name: tensor_sample(t) for name, t in model.state_dict().items()})
