"""Data loading of each trainer with and without the token cache (`trivec.training.token_cache`).

    python benchmarks/token_cache.py --data build/m3-small-data/cmrc2018-train-dense.jsonl --model m3-small \
        [--trainer contrastive|reranker|retromae]

One epoch of batches as the trainer's DataLoader builds them, in three ways, interleaved over `--repeats`
rounds:
* tokenise: no cache, every batch tokenised as it is collated (every epoch of every run pays this);
* cache, first run: the file's distinct items tokenised once and written (a fresh cache folder), then the
  epoch built from the cache;
* cache, later runs: the current cache file read back, then the epoch built from it.
Trainers: `contrastive` (`ContrastiveDataset[i]` → `ContrastiveCollator`; m3-small's recipe: query 64 /
passage 256 tokens, group 4, batch 16, e5 prompts, the model's `fold_capitals`); `reranker` (`GroupDataset` →
`GroupCollator`, FlagEmbedding's defaults: pairs of 512 tokens, group 8, batch 4; the cache holds each distinct
(query, passage) pair); `retromae` (`RetroMAECollator` on the distinct passages of `--data` written as a
corpus file, 512 tokens, batch 8; the masks are drawn per batch either way and are part of the time).
Every cached batch is checked equal to the tokenised one (RetroMAE: with equally seeded generators). The cache
is written to a temporary folder, never beside the data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from trivec.inference.reranker import PairTokenizer
from trivec.models.checkpoint import resolve_model_path
from trivec.training.arguments import DataArguments
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset
from trivec.training.examples import load_examples
from trivec.training.reranker.arguments import RerankerConfig
from trivec.training.reranker.train import GroupCollator, GroupDataset, file_pairs, load_groups
from trivec.training.retromae.collator import RetroMAECollator
from trivec.training.retromae.data import TextCorpus

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _side_common import cpu_model

Batches = list[dict[str, torch.Tensor]]


class Loading:
    """One trainer's data loading: a fresh uncached collator, the cache's setup, one epoch of batches."""

    describe = ""
    batches = 0

    def collator(self) -> Any:
        raise NotImplementedError

    def use_cache(self, collator: Any, folder: Path) -> int:
        """Load or build the cache into `collator`; the number of distinct cached items."""
        raise NotImplementedError

    def epoch(self, collator: Any) -> Batches:
        """Every batch of epoch 0, collated."""
        raise NotImplementedError


class Contrastive(Loading):
    def __init__(self, args: argparse.Namespace, tokenizer: Any, fold: bool) -> None:
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
        self.dataset = ContrastiveDataset(data, batch_size=args.batch_size, seed=42)
        self.tokenizer, self.args, self.fold = tokenizer, args, fold
        rows = sum(len(f.examples) for f in self.dataset.files)
        self.batches = len(self.dataset)
        self.describe = (
            f"{rows} rows; query {args.query_max_len} / passage {args.passage_max_len} tokens, group "
            f"{args.group_size}, batch {args.batch_size}, e5 prompts, fold_capitals {fold}"
        )

    def collator(self) -> Any:
        a = self.args
        return ContrastiveCollator(
            self.tokenizer, a.query_max_len, a.passage_max_len, fold_capitals=self.fold
        )

    def use_cache(self, collator: ContrastiveCollator, folder: Path) -> int:
        return len(collator.use_token_cache(self.dataset, folder=folder))

    def epoch(self, collator: ContrastiveCollator) -> Batches:
        self.dataset.set_epoch(0)
        out = []
        for i in range(len(self.dataset)):
            features = collator(self.dataset[i])
            out.append({f"{side}.{k}": v for side in ("query", "passage") for k, v in features[side].items()})
        return out


class Reranker(Loading):
    def __init__(self, args: argparse.Namespace, tokenizer: Any) -> None:
        config = RerankerConfig(
            model=args.model, data=list(args.data), output_dir="-", max_examples_per_file=args.max_examples
        )
        examples = load_groups(config)
        self.files = file_pairs(examples)
        self.dataset = GroupDataset(examples, args.group_size, seed=42)
        self.batch = args.batch_size
        self.pairs = PairTokenizer(tokenizer, args.max_length, max_length=args.max_length)
        self.pad_id = int(tokenizer.pad_token_id)
        self.batches = -(-len(examples) // args.batch_size)
        self.describe = (
            f"{len(examples)} groups; pairs of {args.max_length} tokens (query ≤ {args.max_length * 3 // 4}), "
            f"group {args.group_size}, batch {args.batch_size}"
        )

    def collator(self) -> Any:
        return GroupCollator(self.pairs, self.pad_id)

    def use_cache(self, collator: GroupCollator, folder: Path) -> int:
        return len(collator.use_token_cache(self.files, folder=folder))

    def epoch(self, collator: GroupCollator) -> Batches:
        self.dataset.epoch = 0
        n = len(self.dataset)
        return [
            collator([self.dataset[i] for i in range(s, min(s + self.batch, n))])
            for s in range(0, n, self.batch)
        ]


class RetroMAE(Loading):
    def __init__(self, args: argparse.Namespace, tokenizer: Any, scratch: Path) -> None:
        passages: dict[str, None] = {}
        for path in args.data:
            for ex in load_examples(path):
                passages.update(dict.fromkeys(p.strip() for p in (*ex.pos, *ex.neg) if p.strip()))
        corpus = scratch / "passages.jsonl"  # the training file's passages as a RetroMAE corpus
        with corpus.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps({"text": p}, ensure_ascii=False) + "\n" for p in passages)
        self.corpus = TextCorpus([corpus])
        self.tokenizer, self.max_length, self.batch = tokenizer, args.max_length, args.batch_size
        self.batches = -(-len(self.corpus) // args.batch_size)
        self.describe = (
            f"{len(self.corpus)} passages of the file as a corpus; {args.max_length} tokens, batch "
            f"{args.batch_size}, masks drawn per batch"
        )

    def collator(self) -> Any:
        return RetroMAECollator(
            self.tokenizer, max_seq_length=self.max_length, generator=torch.Generator().manual_seed(0)
        )

    def use_cache(self, collator: RetroMAECollator, folder: Path) -> int:
        return len(collator.use_token_cache(self.corpus.files(), folder=folder))

    def epoch(self, collator: RetroMAECollator) -> Batches:
        texts, n = self.corpus.texts, len(self.corpus)
        return [collator(texts[s : s + self.batch]) for s in range(0, n, self.batch)]


DEFAULTS = {  # trainer → (max length, group size, batch size) unless given
    "contrastive": (None, 4, 16),
    "reranker": (512, 8, 4),
    "retromae": (512, None, 8),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", required=True, help="FlagEmbedding JSONL training files")
    parser.add_argument("--trainer", choices=list(DEFAULTS), default="contrastive")
    parser.add_argument(
        "--model", default="m3-small", help="model whose tokenizer tokenises (name or folder)"
    )
    parser.add_argument("--query-max-len", type=int, default=64, help="contrastive")
    parser.add_argument("--passage-max-len", type=int, default=256, help="contrastive")
    parser.add_argument("--max-length", type=int, default=None, help="reranker pair / RetroMAE text tokens")
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-examples", type=int, default=None, help="seeded subsample per file")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    length, group, batch = DEFAULTS[args.trainer]
    args.max_length = args.max_length or length
    args.group_size = args.group_size or group
    args.batch_size = args.batch_size or batch

    folder = Path(resolve_model_path(args.model))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = folder / "trivec_config.json"
    fold = bool(json.loads(config.read_text()).get("fold_capitals", False)) if config.is_file() else False

    times: dict[str, list[tuple[float, float]]] = {
        "tokenise": [],
        "cache, first run": [],
        "cache, later runs": [],
    }
    distinct = 0
    with tempfile.TemporaryDirectory() as scratch:
        loading: Loading
        if args.trainer == "contrastive":
            loading = Contrastive(args, tokenizer, fold)
        elif args.trainer == "reranker":
            loading = Reranker(args, tokenizer)
        else:
            loading = RetroMAE(args, tokenizer, Path(scratch))
        for repeat in range(args.repeats):
            start = time.perf_counter()
            reference = loading.epoch(loading.collator())
            times["tokenise"].append((0.0, time.perf_counter() - start))
            for name in ("cache, first run", "cache, later runs"):
                cache = Path(scratch) / f"round-{repeat}"  # fresh for the first run, kept for the later one
                cached = loading.collator()
                start = time.perf_counter()
                distinct = loading.use_cache(cached, cache)
                setup = time.perf_counter() - start
                start = time.perf_counter()
                batches = loading.epoch(cached)
                times[name].append((setup, time.perf_counter() - start))
                for got, want in zip(batches, reference, strict=True):
                    assert got.keys() == want.keys(), "cached batch differs"
                    assert all(torch.equal(got[k], want[k]) for k in want), "cached batch differs"

    print(
        f"# token cache, {args.trainer}: {', '.join(args.data)} ({loading.describe}; {distinct} distinct "
        f"cached items, {loading.batches} batches)"
    )
    print(
        f"# {cpu_model()}, torch threads {torch.get_num_threads()}; tokenizer {args.model} "
        f"({type(tokenizer).__name__}); median of {args.repeats} interleaved rounds"
    )
    print(f"{'loading':<20} {'cache setup s':>14} {'epoch s':>9} {'total s':>9} {'ms/batch':>9}")
    for name, values in times.items():
        setup = statistics.median(s for s, _ in values)
        run = statistics.median(e for _, e in values)
        per = 1000 * run / loading.batches
        print(f"{name:<20} {setup:>14.2f} {run:>9.2f} {setup + run:>9.2f} {per:>9.2f}")


if __name__ == "__main__":
    main()
