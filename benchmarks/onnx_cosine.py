"""Dense cosine between an ONNX graph and torch float32 on the passages of every retrieval set.

The int8 graph of `trivec export onnx --quantize int8` is judged by how far its dense vectors move from the
float32 model's: per set, the cosine of each passage's two vectors (document prompt, max_length 512); all
passages of a set with at most `--keep-all` (500) of them, else a seeded random `--sample` (400). Prints one row per set
and the pooled mean / min, with the CPU model.

    python benchmarks/onnx_cosine.py --model m3-small --onnx runs/onnx-quality-v2/m3-small-onnx \
        --onnx-file model_int8.onnx
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import numpy as np

from _side_common import cpu_model
from trivec.evaluation.data import read_ids_and_texts
from trivec.evaluation.registry import TASK_INDEX
from trivec.inference.encoder import Embedder
from trivec.vectors import unit_rows


def retrieval_folders(data: Path) -> list[str]:
    """The folders `tasks.tsv` lists as retrieval sets, in its order."""
    rows = (line.split("\t") for line in (data / TASK_INDEX).read_text().splitlines()[1:] if line.strip())
    return [row[0] for row in rows if len(row) > 1 and row[1] == "retrieval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="m3-small", help="The torch model (loaded in float32).")
    parser.add_argument("--onnx", required=True, help="Directory written by `trivec export onnx`.")
    parser.add_argument("--onnx-file", default="model_int8.onnx", help="Graph file under DIR/onnx/.")
    parser.add_argument("--data", default=os.environ.get("TRIVEC_SHARED", "../shared") + "/data")
    parser.add_argument(
        "--sets", default=None, help="Comma-separated folders (default: every retrieval set)."
    )
    parser.add_argument(
        "--keep-all", type=int, default=500, help="Sets with at most this many passages: all."
    )
    parser.add_argument("--sample", type=int, default=400, help="Larger sets: this many, a seeded sample.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.sample < 1 or args.keep_all < 0:
        parser.error(f"--sample must be ≥ 1 and --keep-all ≥ 0, got {args.sample} and {args.keep_all}")
    data = Path(args.data)
    sets = args.sets.split(",") if args.sets else retrieval_folders(data)

    reference = Embedder.from_pretrained(args.model, dtype="float32")
    graph = Embedder.from_pretrained(args.onnx, backend="onnx", onnx_file=args.onnx_file)
    print(
        f"# {cpu_model()}; {args.model} float32 vs {args.onnx} {args.onnx_file}; document prompt, max_length 512"
    )
    print("| set | passages | mean | min |\n|---|---|---:|---:|")
    pooled = []
    for name in sets:
        _, texts = read_ids_and_texts(data / name / "corpus.jsonl")
        total = len(texts)
        if total > args.keep_all:
            texts = random.Random(args.seed).sample(texts, args.sample)
        a, b = (
            unit_rows(model.encode(texts, prompt_name="document", max_length=512).dense)
            for model in (reference, graph)
        )
        cosine = (a * b).sum(axis=1)
        pooled.append(cosine)
        print(f"| {name} | {len(texts)} of {total} | {cosine.mean():.4f} | {cosine.min():.4f} |", flush=True)
    every = np.concatenate(pooled)
    print(f"| **all** | {len(every)} | **{every.mean():.4f}** | {every.min():.4f} |")


if __name__ == "__main__":
    main()
