"""Quick start: encode and score real texts with trivec's offline default model.

Reads a few TREC QA questions and their candidate answer sentences from `../shared/data/trecqa`, scores every
candidate against its question, and prints the best three (✓ marks a judged answer).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from trivec import Embedder

DATA = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "data"


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(n_queries: int = 4) -> None:
    folder = DATA / "trecqa"
    if not folder.is_dir():
        sys.exit(f"quickstart: {folder} not found (set TRIVEC_SHARED to the shared/ folder)")
    queries = {row["id"]: row["text"] for row in load_jsonl(folder / "queries.jsonl")}
    corpus = {row["id"]: row["text"] for row in load_jsonl(folder / "corpus.jsonl")}
    relevant = {tuple(line.split("\t")[:2]) for line in (folder / "qrels.tsv").read_text().splitlines()[1:]}
    candidates = load_jsonl(folder / "candidates.jsonl")[:n_queries]

    started = time.perf_counter()
    embedder = Embedder.from_pretrained("default")
    print(
        f"model: default (all-MiniLM-L6-v2, offline) loaded in {time.perf_counter() - started:.2f}s; "
        f"outputs: {', '.join(embedder.available_modes())}; max_length {embedder.max_length}\n"
    )
    for row in candidates:
        query = queries[row["query-id"]]
        texts = [corpus[c] for c in row["candidates"]]
        started = time.perf_counter()
        scores = embedder.score(query, texts)["dense"]
        took = (time.perf_counter() - started) * 1000
        print(f"Q: {query}   ({len(texts)} candidates scored in {took:.0f} ms)")
        for rank, i in enumerate(scores.argsort()[::-1][:3], start=1):
            mark = "✓" if (row["query-id"], row["candidates"][i]) in relevant else " "
            print(f"  {rank}. {mark} {scores[i]:.3f}  {texts[i][:110]}")
        print()
    vectors = embedder.encode([queries[candidates[0]["query-id"]]]).dense
    assert vectors is not None
    print(f"dense vector shape {vectors.shape}, norm {float((vectors[0] ** 2).sum() ** 0.5):.4f}")


if __name__ == "__main__":
    main()
