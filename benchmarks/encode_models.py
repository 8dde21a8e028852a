"""Encoding speed of trivec's offline models side by side: m3-small (the default) vs minilm-m3.

    python benchmarks/encode_models.py [--texts 600] [--repeats 3] [--out docs/benchmarks/encode-models.md]

The same real passages (an equal share of every retrieval corpus of ../shared/data: English, Chinese,
Japanese, Thai, Turkish, Indonesian, Arabic, Persian; natural lengths, max_length 512) are encoded by each
model in fp32 and bf16, dense only and all three outputs. Runs are interleaved (model A, model B, A, B, …)
so the machine's drift hits both alike; the best of the repeats is kept. texts/s compares the models on the
same work; tokens/s counts each model's own tokens (MiniLM's English WordPiece vocabulary turns much
non-English text into [UNK] pieces, so its token counts are not the same work).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from trivec import Embedder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _side_common import cpu_model

DATA = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "data"
CORPORA = (
    "cranfield",
    "lisa",
    "cmrc2018-trial-retrieval",
    "jaquad-dev-retrieval",
    "iapp-wiki-qa-dev-retrieval",
    "tquad-dev-retrieval",
    "tydiqa-id-dev-retrieval",
    "arcd-test-retrieval",
    "parsinlu-rc-dev-retrieval",
)
MODELS = ("m3-small", "minilm-m3")


def passages(count: int) -> list[str]:
    share = max(1, count // len(CORPORA))
    texts: list[str] = []
    for name in CORPORA:
        with (DATA / name / "corpus.jsonl").open(encoding="utf-8") as handle:
            for line, _ in zip(handle, range(share), strict=False):
                texts.append(json.loads(line)["text"])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    texts = passages(args.texts)
    print(
        f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; {len(texts)} passages"
    )
    cases = [(dtype, outputs) for dtype in ("float32", "bfloat16") for outputs in ("dense", "all three")]
    embedders = {
        (m, d): Embedder.from_pretrained(m, device="cpu", dtype=d)
        for m in MODELS
        for d in ("float32", "bfloat16")
    }
    tokens = {m: sum(len(ids) for ids in embedders[(m, "float32")].tokenize(texts, 512)) for m in MODELS}
    best: dict[tuple[str, str, str], float] = {}
    for dtype, outputs in cases:
        full = outputs == "all three"
        for model in MODELS:  # warm-up
            embedders[(model, dtype)].encode(
                texts[:16], dense=True, sparse=full, colbert=full, max_length=512
            )
        for _ in range(args.repeats):
            for model in MODELS:
                started = time.perf_counter()
                embedders[(model, dtype)].encode(texts, dense=True, sparse=full, colbert=full, max_length=512)
                elapsed = time.perf_counter() - started
                key = (model, dtype, outputs)
                best[key] = min(best.get(key, float("inf")), elapsed)
    rows = [
        "| model | dtype | outputs | texts/s | tokens/s (own tokens) | tokens |",
        "|---|---|---|---:|---:|---:|",
    ]
    for dtype, outputs in cases:
        for model in MODELS:
            seconds = best[(model, dtype, outputs)]
            rows.append(
                f"| {model} | {dtype} | {outputs} | {len(texts) / seconds:.1f} | "
                f"{tokens[model] / seconds:,.0f} | {tokens[model]:,} |"
            )
    table = "\n".join(
        [
            f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, best of {args.repeats} interleaved runs",
            "",
            *rows,
        ]
    )
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
