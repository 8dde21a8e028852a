"""Encoder precision: the dtype names trivec takes, and `dtype="auto"` (bf16 where the hardware runs it fast).

`auto` resolves per device:

- CPU: bfloat16 when the CPU has AMX-BF16 tiles or AVX512-BF16 instructions (oneDNN then runs bf16 matmuls
  natively: ≈ 3× trivec's fp32 on AMX in `benchmarks/encode.py`), float32 elsewhere (bf16 is emulated there
  and slower than fp32);
- CUDA: bfloat16 when the GPU supports it natively (compute capability ≥ 8.0), float32 otherwise;
- any other device (MPS, ...): float32.

bf16 keeps retrieval quality: m3-small's nDCG@10, averaged over 9 retrieval sets of `../shared/data`, is within
0.04 point of float32 in every mode (docs/onnx.md; the target is 0.2). float32 stays available, and is what a
library call with no `dtype` gets: exact, as the FlagEmbedding parity tests require. The commands default to
`auto` (`trivec.cli.common.DEFAULT_DTYPE`).
"""

from __future__ import annotations

import os

import torch

from trivec.inference.choices import AUTO, check_dtype_name

NAMES: dict[str, torch.dtype] = {  # the torch dtype of each of `choices.DTYPE_NAMES`
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
DtypeSpec = torch.dtype | str | None


def check_dtype(dtype: DtypeSpec) -> DtypeSpec:
    """`dtype` as given when trivec knows it (None, a torch dtype, `auto` or a name in `NAMES`); else a
    one-line error. Checked where an option is defined, before anything loads."""
    if not isinstance(dtype, torch.dtype):
        check_dtype_name(dtype)
    return dtype


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bf16 matmuls natively (AMX-BF16 tiles or AVX512-BF16)."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # an older torch: ask the two probes it has
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def fast_bf16(device: torch.device) -> bool:
    """True when bf16 runs natively (and so faster than fp32) on `device`."""
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    return False


def resolve_dtype(dtype: DtypeSpec, device: torch.device) -> torch.dtype | None:
    """The torch dtype to load with on `device`: `auto` → bfloat16 where `fast_bf16`, else float32; a name →
    its dtype; None stays None (the model's float32)."""
    dtype = check_dtype(dtype)
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == AUTO:
        return torch.bfloat16 if fast_bf16(device) else torch.float32
    return NAMES[dtype]


def describe_auto(device: torch.device) -> str:
    """What `auto` resolves to on `device`, and why (for logs and `--help`-style messages)."""
    chosen = resolve_dtype(AUTO, device)
    name = str(chosen).removeprefix("torch.")
    if device.type == "cpu":
        why = "AMX-BF16 / AVX512-BF16" if chosen == torch.bfloat16 else "no AMX-BF16 / AVX512-BF16"
    elif device.type == "cuda":
        why = "native bf16" if chosen == torch.bfloat16 else "no native bf16"
    else:
        why = f"{device.type}: bf16 not measured"
    return f"{name} ({device.type}: {why})" if device.type in ("cpu", "cuda") else f"{name} ({why})"


# oneDNN primitives kept for reuse (its default is 1024). The packed encoder's row count changes with every
# batch, so nearly every CPU matmul is a new shape: a large cache seldom hits and keeps ≈ 1 MB per primitive
# (AMX-blocked buffers): ≈ 240 MB after one Cranfield build (docs/scale.md). 32 keeps the shapes that repeat.
ONEDNN_CACHE_CAPACITY = 32
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
# torch's bf16 matmuls also keep what they made per shape in ideep's own LRU cache (default 1024 entries,
# ≈ 0.2 MB each beyond oneDNN's): ≈ 25 MB more per 256 Cranfield chunks encoded, ≈ 80 MB per build, growing
# with the corpus. Bounded the same way.
IDEEP_CACHE_ENV = "LRU_CACHE_CAPACITY"


def limit_onednn_cache(capacity: int = ONEDNN_CACHE_CAPACITY) -> None:
    """Bound oneDNN's primitive cache and ideep's LRU cache of matmul primitives unless the user set
    `ONEDNN_PRIMITIVE_CACHE_CAPACITY` / `LRU_CACHE_CAPACITY`: each is read when its first primitive is made,
    so this acts only before the process's first CPU matmul; results are the same (a primitive made again
    runs the same kernel), only memory and the cost of re-making one change."""
    os.environ.setdefault(ONEDNN_CACHE_ENV, str(capacity))
    os.environ.setdefault(IDEEP_CACHE_ENV, str(capacity))
