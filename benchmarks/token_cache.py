"""Data loading of contrastive training with and without the token cache (`trivec.training.token_cache`).

    python benchmarks/token_cache.py --data build/m3-small-data/cmrc2018-train-dense.jsonl --model m3-small

One epoch of batches as the trainer's DataLoader builds them (`ContrastiveDataset[i]` → `ContrastiveCollator`),
in three ways, interleaved over `--repeats` rounds:
* tokenise: no cache, every batch tokenised as it is collated (every epoch of every run pays this);
* cache, first run: the file's distinct texts tokenised once and written (a fresh cache folder), then the epoch
  padded from the cache;
* cache, later runs: the current cache file read back, then the epoch padded from it.
The settings default to m3-small's recipe (query 64 / passage 256 tokens, group 4, batch 16, e5 prompts, the
model's `fold_capitals`). Every cached batch is checked equal to the tokenised one. The cache is written to a
temporary folder, never beside the data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer

from trivec.models.checkpoint import resolve_model_path
from trivec.training.arguments import DataArguments
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _side_common import cpu_model


def epoch(dataset: ContrastiveDataset, collator: ContrastiveCollator) -> list[dict[str, torch.Tensor]]:
    """Every local batch of epoch 0, collated (ids and masks only)."""
    dataset.set_epoch(0)
    out = []
    for i in range(len(dataset)):
        features = collator(dataset[i])
        out.append({f"{side}.{k}": v for side in ("query", "passage") for k, v in features[side].items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", required=True, help="FlagEmbedding JSONL training files")
    parser.add_argument(
        "--model", default="m3-small", help="model whose tokenizer tokenises (name or folder)"
    )
    parser.add_argument("--query-max-len", type=int, default=64)
    parser.add_argument("--passage-max-len", type=int, default=256)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-examples", type=int, default=None, help="seeded subsample per file")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    folder = Path(resolve_model_path(args.model))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = folder / "trivec_config.json"
    fold = bool(json.loads(config.read_text()).get("fold_capitals", False)) if config.is_file() else False
    data = DataArguments(
        train_data=list(args.data),
        train_group_size=args.group_size,
        query_max_len=args.query_max_len,
        passage_max_len=args.passage_max_len,
        query_instruction="query: ",
        passage_instruction="passage: ",
        max_examples_per_file=args.max_examples,
        fill_negatives="random",
    )
    data.validate()
    dataset = ContrastiveDataset(data, batch_size=args.batch_size, seed=42)

    def collator() -> ContrastiveCollator:
        return ContrastiveCollator(tokenizer, args.query_max_len, args.passage_max_len, fold_capitals=fold)

    times: dict[str, list[tuple[float, float]]] = {
        "tokenise": [],
        "cache, first run": [],
        "cache, later runs": [],
    }
    distinct = 0
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            start = time.perf_counter()
            reference = epoch(dataset, collator())
            times["tokenise"].append((0.0, time.perf_counter() - start))
            for name in ("cache, first run", "cache, later runs"):
                cache = Path(scratch) / f"round-{repeat}"  # fresh for the first run, kept for the later one
                cached = collator()
                start = time.perf_counter()
                distinct = len(cached.use_token_cache(dataset, folder=cache))
                setup = time.perf_counter() - start
                start = time.perf_counter()
                batches = epoch(dataset, cached)
                times[name].append((setup, time.perf_counter() - start))
                for got, want in zip(batches, reference, strict=True):
                    assert all(torch.equal(got[k], want[k]) for k in want), "cached batch differs"

    rows = sum(len(f.examples) for f in dataset.files)
    print(
        f"# token cache: {', '.join(args.data)} ({rows} rows, {distinct} distinct texts, {len(dataset)} batches)"
    )
    print(
        f"# {cpu_model()}, torch threads {torch.get_num_threads()}; tokenizer {args.model} "
        f"({type(tokenizer).__name__}); query {args.query_max_len} / passage {args.passage_max_len} tokens, "
        f"group {args.group_size}, batch {args.batch_size}; median of {args.repeats} interleaved rounds"
    )
    print(f"{'loading':<20} {'cache setup s':>14} {'epoch s':>9} {'total s':>9} {'ms/batch':>9}")
    for name, values in times.items():
        setup = statistics.median(s for s, _ in values)
        run = statistics.median(e for _, e in values)
        print(f"{name:<20} {setup:>14.2f} {run:>9.2f} {setup + run:>9.2f} {1000 * run / len(dataset):>9.2f}")


if __name__ == "__main__":
    main()
