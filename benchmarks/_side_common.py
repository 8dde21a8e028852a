"""What both benchmark sides share: job files, timing, peak memory, the on-disk form of the outputs, and the
CPU's name for the tables' headers.

Only the standard library and numpy: this module is imported by the trivec worker and by the reference
worker, which runs in its own virtual environment without trivec.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MB = 1024 * 1024


def cpu_model() -> str:
    """The CPU's model name (timings move by 2× between the machines these benchmarks run on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() == "model name":
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float:
    """Current resident set size of this process."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size since start, or since the last `reset_peak()` where Linux allows it."""
    kb = _status_kb("VmHWM")
    if kb is None:
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux `clear_refs` 5); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cap_address_space(extra_gb: float | None) -> None:
    """Let the process map at most `extra_gb` more: an allocation past it raises instead of waking the OOM killer."""
    if not extra_gb:
        return
    size_kb = _status_kb("VmSize") or 0
    limit = size_kb * 1024 + int(extra_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def read_job() -> dict[str, Any]:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} JOB.json")
    return json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))


def timed_runs(run: Callable[[], Any], repeats: int) -> tuple[Any, list[float], float]:
    """Call `run` `repeats` times; return the last result, the wall times and the peak RSS while running."""
    times: list[float] = []
    peak = 0.0
    result = None
    for _ in range(repeats):
        result = None  # free the previous outputs before the next run
        resettable = reset_peak()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
        peak = max(peak, peak_rss_mb() if resettable else float("nan"))
    return result, times, peak


def write_outputs(
    path: str | os.PathLike[str],
    dense: np.ndarray | None,
    sparse: Sequence[tuple[np.ndarray, np.ndarray]] | None,
    colbert: Sequence[np.ndarray] | None,
) -> None:
    """Save outputs as flat arrays: sparse and ColBERT rows concatenated with offsets (uncompressed npz)."""
    arrays: dict[str, np.ndarray] = {}
    if dense is not None:
        arrays["dense"] = np.asarray(dense, dtype=np.float32)
    if sparse is not None:
        sizes = [len(ids) for ids, _ in sparse]
        arrays["sparse_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays["sparse_ids"] = (
            np.concatenate([ids for ids, _ in sparse]).astype(np.int64) if sparse else np.zeros(0, np.int64)
        )
        arrays["sparse_values"] = (
            np.concatenate([v for _, v in sparse]).astype(np.float32) if sparse else np.zeros(0, np.float32)
        )
    if colbert is not None:
        sizes = [c.shape[0] for c in colbert]
        arrays["colbert_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays["colbert_rows"] = np.concatenate([np.asarray(c, dtype=np.float32) for c in colbert])
    np.savez(path, **arrays)


def write_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(metrics, indent=1), encoding="utf-8")


def encoder_flops(lengths: Sequence[int], layers: int, hidden: int, intermediate: int) -> float:
    """Forward FLOPs of a post-LN transformer encoder over texts of these token counts (no padding).

    Per layer and text of n tokens: 2·n·(4·H² + 2·H·I) for the Q/K/V/output and FFN matmuls, plus
    4·n²·H for the attention scores and the weighted sum of values.
    """
    n = np.asarray(lengths, dtype=np.float64)
    per_layer = 2.0 * n * (4 * hidden * hidden + 2 * hidden * intermediate) + 4.0 * n * n * hidden
    return float(layers * per_layer.sum())
