"""Cross-device negatives: gather every process's outputs so each query meets all passages of the step.

`all_gather` returns copies without gradient; the local shard is put back in its place so gradients flow
into this process's encoder. Every process then computes the same loss over the whole global batch, and
each one differentiates it w.r.t. its own shard only; DDP averages those shard gradients, which gives
`1/world_size` of the true gradient — so the trainer multiplies the loss by `world_size` before `backward`
(`ContrastiveOutput.gradient_scale`), and the parameters get exactly the gradient of one process on the
concatenated batch (tevatron does the same; FlagEmbedding does not, so its cross-device gradient is
`1/world_size` of it).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from trivec.training.reps import Reps, pad_rows


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside distributed training."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_tensor(tensor: torch.Tensor, keep_grad: bool = True) -> torch.Tensor:
    """Concatenate `tensor` of all processes along dim 0 (rank order); dim 1 is right-padded to the longest
    when it differs (ColBERT rows). With `keep_grad` the local shard is the caller's tensor itself."""
    rank, size = world()
    if size == 1:
        return tensor
    if tensor.dim() >= 2:
        length = torch.tensor([tensor.shape[1]], device=tensor.device)
        lengths = [torch.zeros_like(length) for _ in range(size)]
        dist.all_gather(lengths, length)
        tensor = pad_rows(tensor, int(max(int(x) for x in lengths)))
    sending = tensor.contiguous()
    if sending.dtype == torch.bool:
        sending = sending.to(torch.uint8)
    parts = [torch.empty_like(sending) for _ in range(size)]
    dist.all_gather(parts, sending.detach())
    if tensor.dtype == torch.bool:
        parts = [p.bool() for p in parts]
    if keep_grad:
        parts[rank] = tensor
    return torch.cat(parts)


def gather_reps(reps: Reps) -> Reps:
    """All processes' outputs, the local shard keeping its gradient."""
    return reps.map(lambda _, t: gather_tensor(t))
