"""trivec side of the encode benchmark: reads a job file, encodes, writes timings, peak RSS and outputs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from _side_common import (
    cap_address_space,
    peak_rss_mb,
    read_job,
    rss_mb,
    set_threads,
    timed_runs,
    write_metrics,
    write_outputs,
)


def main() -> None:
    job = read_job()
    set_threads(job["threads"])
    from trivec import Embedder

    texts: list[str] = json.loads(Path(job["texts"]).read_text(encoding="utf-8"))
    outputs = set(job["outputs"])
    start = time.perf_counter()
    embedder = Embedder.from_pretrained(
        job["model"],
        device="cpu",
        dtype=job.get("dtype"),
        backend=job.get("backend", "torch"),
        onnx_file=job.get("onnx_file"),
    )
    load_s = time.perf_counter() - start
    if job.get("batch_tokens"):
        embedder.batch_tokens = int(job["batch_tokens"])

    def encode(items: list[str]):
        return embedder.encode(
            items,
            dense="dense" in outputs,
            sparse="sparse" in outputs,
            colbert="colbert" in outputs,
            max_length=job["max_length"],
        )

    if job["warmup"]:
        encode(texts[: job["warmup"]])
    cap_address_space(job.get("mem_cap_gb"))
    base_rss = rss_mb()
    error = None
    try:
        result, times, peak = timed_runs(lambda: encode(texts), job["repeats"])
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        result, times, peak = None, [], peak_rss_mb()
    lengths = [len(ids) for ids in embedder.tokenize(texts, job["max_length"])]
    from trivec.inference.batching import plan_batches

    batches = plan_batches(lengths, embedder.batch_tokens, embedder.max_batch_size)
    if result is not None and job.get("save_outputs", True):
        sparse = [(s.indices, s.values) for s in result.sparse] if result.sparse is not None else None
        write_outputs(job["out"] + ".npz", result.dense, sparse, result.colbert)
    write_metrics(
        job["out"] + ".json",
        {
            "times": times,
            "load_s": load_s,
            "tokens": int(sum(lengths)),
            "lengths": lengths,
            "base_rss_mb": base_rss,
            "peak_rss_mb": peak,
            "batch_tokens": embedder.batch_tokens,
            "max_batch_size": embedder.max_batch_size,
            "batch_sizes": [len(b) for b in batches],
            "packed": embedder._packed is not None,
            "backend": embedder.backend,
            "onnx_file": job.get("onnx_file"),
            "threads": job["threads"],
            "pid": os.getpid(),
            "error": error,
        },
    )


if __name__ == "__main__":
    main()
