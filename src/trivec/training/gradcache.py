"""Gradient cache (split-batch): the loss of a big batch with the memory of a small one, same gradients.

GradCache (Gao et al. 2021), as M3's split-batch: (1) encode sub-batches without a graph; (2) compute the
loss on the concatenated outputs and its gradient w.r.t. those outputs only; (3) encode each sub-batch
again with a graph and back-propagate `Σ output · cached gradient` — by the chain rule exactly the gradient
of the full-batch loss. The random state is replayed in (3) so dropout masks equal those of (1). Under DDP
gradients are synchronised only on the last sub-batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from trivec.training.modeling import ContrastiveModel, ContrastiveOutput
from trivec.training.reps import Reps


class RandomState:
    """Capture the CPU (and CUDA) generators now; `with state:` replays them and restores the current ones."""

    def __init__(self) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        saved = RandomState()
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        try:
            yield
        finally:
            torch.set_rng_state(saved.cpu)
            if saved.cuda is not None:
                torch.cuda.set_rng_state_all(saved.cuda)


def split_features(features: Mapping[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    """Sub-batches of at most `size` rows, each cut to its own longest text (less padding to encode)."""
    mask = features["attention_mask"]
    chunks = []
    for start in range(0, mask.shape[0], size):
        rows = slice(start, start + size)
        length = max(int(mask[rows].sum(dim=1).max()), 1)
        chunks.append({k: v[rows, :length] for k, v in features.items()})
    return chunks


def grad_cache_step(
    model: torch.nn.Module,
    inputs: Mapping[str, Any],
    sub_batch_size: int,
    backward: Callable[[torch.Tensor], None],
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    unwrap: Callable[[torch.nn.Module], torch.nn.Module],
    loss_scale: float = 1.0,
    step: int = 0,
) -> ContrastiveOutput:
    """One forward/backward of a batch in sub-batches; returns the (full-batch) output, loss detached.

    `model` may be DDP-wrapped: sub-batches go through its forward (`encode_only`) so its hooks run.
    `backward(loss)` back-propagates the scaled loss to the cached outputs (e.g. `accelerator.backward`,
    which applies an fp16 gradient scaler — the same scale then reaches the parameters in pass 3).
    """
    chunks = [("query", c) for c in split_features(inputs["query"], sub_batch_size)]
    chunks += [("passage", c) for c in split_features(inputs["passage"], sub_batch_size)]
    states: list[RandomState] = []
    outputs: list[Reps] = []
    with torch.no_grad():
        for side, features in chunks:
            states.append(RandomState())
            with autocast():
                outputs.append(model(**{side: features}, encode_only=True))
    n_query = sum(1 for side, _ in chunks if side == "query")
    q = Reps.cat(outputs[:n_query]).detach_leaf()
    p = Reps.cat(outputs[n_query:]).detach_leaf()
    core = unwrap(model)
    assert isinstance(core, ContrastiveModel)
    with autocast():
        out = core.compute_loss(
            q, p, inputs.get("teacher_scores"), bool(inputs.get("in_batch_negatives", True)), step
        )
    backward(out.loss * out.gradient_scale * loss_scale)
    caches = {"query": q, "passage": p}
    offsets = {"query": 0, "passage": 0}
    for i, (side, features) in enumerate(chunks):
        full = caches[side]
        rows = features["input_ids"].shape[0]
        start = offsets[side]
        offsets[side] += rows
        context = no_sync() if i < len(chunks) - 1 else contextlib.nullcontext()
        with context, states[i].replay():
            with autocast():
                reps = model(**{side: features}, encode_only=True, reference=False)  # pass 1 kept it
            tensors, grads = [], []
            for (name, value), (_, cached) in zip(reps.differentiable(), full.differentiable(), strict=True):
                grad = cached.grad
                if grad is None:
                    continue
                grad = grad[start : start + rows]
                if name == "colbert":
                    grad = grad[:, : value.shape[1]]
                tensors.append(value)
                grads.append(grad.to(value.dtype))
            if tensors:
                torch.autograd.backward(tensors, grads)
    out.loss = out.loss.detach()
    return out
