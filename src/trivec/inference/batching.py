"""Token-budget batching: sort by length, pack batches up to a token budget, keep memory bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_BATCH_TOKENS = 16384  # accelerators: large batches keep the device busy
CPU_BATCH_TOKENS = 4096  # CPU: a small budget keeps work buffers in cache (benchmarks/encode.py, section c)
ATTENTION_BUDGET_FACTOR = 1024  # padded batch B·L² ≤ batch_tokens · factor bounds attention memory too


def default_batch_tokens(device: torch.device | str) -> int:
    """The token budget an `Embedder` uses on `device` when none is given."""
    return CPU_BATCH_TOKENS if torch.device(device).type == "cpu" else DEFAULT_BATCH_TOKENS


def plan_batches(
    lengths: Sequence[int], batch_tokens: int = DEFAULT_BATCH_TOKENS, max_batch_size: int = 512
) -> list[list[int]]:
    """Group input positions into batches, longest first.

    A batch of `B` texts padded to length `L` obeys `B·L ≤ batch_tokens` and `B·L² ≤ batch_tokens·1024`
    (activations and attention scores both stay bounded), and `B ≤ max_batch_size`. A text longer than the
    budget runs alone. Returns lists of indices into `lengths`; the caller restores input order.
    """
    if batch_tokens < 1 or max_batch_size < 1:
        raise ValueError(
            f"batch_tokens and max_batch_size must be ≥ 1 (got {batch_tokens}, {max_batch_size})"
        )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for index in order:
        length = max(int(lengths[index]), 1)
        if not current:
            current, width = [index], length
            continue
        size = len(current) + 1
        if (
            size <= max_batch_size
            and size * width <= batch_tokens
            and size * width * width <= batch_tokens * ATTENTION_BUDGET_FACTOR
        ):
            current.append(index)
        else:
            batches.append(current)
            current, width = [index], length
    if current:
        batches.append(current)
    return batches


def distinct_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Each distinct text once, in order of first appearance, and for every input the position of its text
    among them (`distinct[index]` restores the input), so repeated texts are encoded once."""
    position: dict[str, int] = {}
    index = np.array([position.setdefault(t, len(position)) for t in texts], dtype=np.int64)
    return list(position), index
