"""Reference side of the encode benchmark: FlagEmbedding 1.4.2, run with the reference venv's python.

Reads a job file (model, texts, outputs, max_length, threads, repeats), encodes, and writes the timings,
peak RSS and the outputs for the orchestrator (`benchmarks/encode.py`) to compare. Never imports trivec.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

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


def _record_batch_sizes(sizes: list[int]) -> None:
    """Note the size of every batch FlagEmbedding pads (its OOM probe may shrink the batch size)."""
    import FlagEmbedding.inference.embedder.encoder_only.base as base_module
    import FlagEmbedding.inference.embedder.encoder_only.m3 as m3_module

    for module in (base_module, m3_module):
        original = module.pad_with_compat

        def pad(tokenizer, features, *args, _original=original, **kwargs):
            sizes.append(len(features))
            return _original(tokenizer, features, *args, **kwargs)

        module.pad_with_compat = pad


def main() -> None:
    job = read_job()
    set_threads(job["threads"])
    from FlagEmbedding import BGEM3FlagModel, FlagModel

    texts: list[str] = json.loads(Path(job["texts"]).read_text(encoding="utf-8"))
    outputs = set(job["outputs"])
    start = time.perf_counter()
    if job["kind"] == "m3":
        model = BGEM3FlagModel(
            job["model"], use_fp16=False, devices="cpu", pooling_method=job.get("pooling", "cls")
        )
    else:
        model = FlagModel(
            job["model"],
            pooling_method=job.get("pooling", "cls"),
            use_fp16=False,
            devices="cpu",
            normalize_embeddings=True,
        )
    load_s = time.perf_counter() - start
    batch_sizes: list[int] = []
    _record_batch_sizes(batch_sizes)
    batch_size = job.get("batch_size") or model.batch_size
    max_length = job["max_length"]

    def encode(items: list[str]):
        if job["kind"] == "m3":
            return model.encode(
                items,
                batch_size=batch_size,
                max_length=max_length,
                return_dense="dense" in outputs,
                return_sparse="sparse" in outputs,
                return_colbert_vecs="colbert" in outputs,
            )
        return {"dense_vecs": model.encode(items, batch_size=batch_size, max_length=max_length)}

    if job["warmup"]:
        encode(texts[: job["warmup"]])
    cap_address_space(job.get("mem_cap_gb"))
    base_rss = rss_mb()
    batch_sizes.clear()
    error = None
    try:
        result, times, peak = timed_runs(lambda: encode(texts), job["repeats"])
    except Exception as exc:  # recorded, shown in the table; the orchestrator carries on
        error = f"{type(exc).__name__}: {str(exc)[:300]}"
        result, times, peak = None, [], peak_rss_mb()
    lengths = [
        len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    if result is not None and job.get("save_outputs", True):
        sparse = None
        if result.get("lexical_weights") is not None:
            sparse = [
                (
                    np.array([int(k) for k in weights], dtype=np.int64),
                    np.array([float(v) for v in weights.values()], dtype=np.float32),
                )
                for weights in result["lexical_weights"]
            ]
        write_outputs(job["out"] + ".npz", result.get("dense_vecs"), sparse, result.get("colbert_vecs"))
    write_metrics(
        job["out"] + ".json",
        {
            "times": times,
            "load_s": load_s,
            "tokens": int(sum(lengths)),
            "lengths": lengths,
            "base_rss_mb": base_rss,
            "peak_rss_mb": peak,
            "batch_sizes": batch_sizes,
            "batch_size": batch_size,
            "threads": job["threads"],
            "pid": os.getpid(),
            "error": error,
        },
    )


if __name__ == "__main__":
    main()
