"""Two versions of trivec, interleaved on one machine: encode speed, search latency and whether they rank alike.

    git worktree add /tmp/trivec-old <commit>
    python benchmarks/versions.py --old /tmp/trivec-old/src [--new src] [--rounds 3] [--model minilm-m3]

A refactor should change neither what trivec returns nor how fast; this checks both on real data. Each round
runs the old version, then the new one, each in its own process (`PYTHONPATH=<its src>`), so that a machine
whose speed drifts affects both alike; the table gives every round and the medians. One run of a version:
the model encodes 300 Cranfield abstracts (dense, sparse, ColBERT; tokens per second, after a warm-up), then
Cranfield's 1,400 abstracts are indexed once per version (`--colbert-dtype`, no token pooling, so versions
from before pooling build the same index) and its 225 queries, encoded once, are searched one at a time
(p50 ms per mode); the top-10 ids of every query are compared between the versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _side_common import cpu_model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
MODES = ("hybrid", "dense", "sparse")

RUN = r"""
import json, statistics, sys, time
from pathlib import Path
import torch
from trivec import Embedder
from trivec.inference.encoder import EncodeResult
from trivec.retrieval import Index, IndexSettings

data, index_dir, model, threads, colbert_dtype = sys.argv[1:6]
torch.set_num_threads(int(threads))
docs = [json.loads(line) for line in open(Path(data) / "corpus.jsonl", encoding="utf-8")]
queries = [json.loads(line)["text"] for line in open(Path(data) / "queries.jsonl", encoding="utf-8")]
embedder = Embedder.from_pretrained(model)
if not (Path(index_dir) / "MANIFEST.json").is_file():
    options = {"colbert_dtype": colbert_dtype}
    if "colbert_pool_factor" in IndexSettings.__dataclass_fields__:
        options["colbert_pool_factor"] = 1
    with Index.create(index_dir, embedder, overwrite=True, **options) as index:
        index.add([{"id": d["id"], "text": d["text"]} for d in docs])
        index.save()
texts = [d["text"] for d in docs[:300]]
embedder.encode(texts[:20], dense=True, sparse=True, colbert=True)
start = time.perf_counter()
out = embedder.encode(texts, dense=True, sparse=True, colbert=True)
result = {"encode_tokens_per_s": sum(out.num_tokens) / (time.perf_counter() - start)}
with Index.open(index_dir, embedder) as index:
    asked = embedder.encode(queries, dense=True, sparse=True, colbert=True, prompt=index.prompt("query"))
    for mode in ("hybrid", "dense", "sparse"):
        seconds, tops = [], []
        for i in range(len(queries)):
            one = EncodeResult(dense=asked.dense[i : i + 1], sparse=asked.sparse[i : i + 1],
                               colbert=asked.colbert[i : i + 1], num_tokens=asked.num_tokens[i : i + 1])
            start = time.perf_counter()
            hits = index.search_vectors(one, 10, mode=mode)
            seconds.append(time.perf_counter() - start)
            tops.append([hit.id for hit in hits[0]])
        result[mode + "_p50_ms"] = 1000 * statistics.median(seconds)
        result[mode + "_top10"] = tops
print("RESULT " + json.dumps(result))
"""


def run_version(src: Path, index_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One run of the version whose package lives in `src`, in its own process."""
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    command = [sys.executable, "-c", RUN, str(SHARED / "data" / "cranfield"), str(index_dir), args.model,
               str(args.threads), args.colbert_dtype]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the version in {src} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--old", type=Path, required=True, help="the old version's src/ (e.g. a git worktree's)"
    )
    parser.add_argument(
        "--new", type=Path, default=REPO / "src", help="the new version's src/ (default: this one)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="minilm-m3")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--colbert-dtype", default="float16", help="the indexes' ColBERT storage (both versions)"
    )
    args = parser.parse_args()
    for name in ("old", "new"):
        if not (getattr(args, name) / "trivec" / "__init__.py").is_file():
            raise SystemExit(f"--{name} {getattr(args, name)} holds no trivec package (give its src/ folder)")
    results: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="trivec-versions-") as scratch:
        for _ in range(args.rounds):
            for name in ("old", "new"):
                results[name].append(run_version(getattr(args, name), Path(scratch) / name, args))
    columns = ["encode_tokens_per_s", *(mode + "_p50_ms" for mode in MODES)]
    print(f"\ntrivec old ({args.old}) vs new ({args.new}) — {cpu_model()}, model {args.model}, "
          f"{args.threads} torch threads, Cranfield, ColBERT {args.colbert_dtype}, {args.rounds} interleaved rounds\n")  # fmt: skip
    print("| version | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in ("old", "new"):
        cells = [
            " / ".join(f"{r[c]:.{0 if c.startswith('encode') else 2}f}" for r in results[name])
            + f" (median {statistics.median(r[c] for r in results[name]):.{0 if c.startswith('encode') else 2}f})"
            for c in columns
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    old, new = results["old"][0], results["new"][0]
    print()
    for mode in MODES:
        same = sum(a == b for a, b in zip(old[mode + "_top10"], new[mode + "_top10"], strict=True))
        print(f"{mode}: identical top-10 lists for {same} of {len(old[mode + '_top10'])} queries")


if __name__ == "__main__":
    main()
