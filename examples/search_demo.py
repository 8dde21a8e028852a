"""Search demo: index a real corpus with trivec's offline default model, reopen it, and search it.

Indexes the 2,358 news sentences of TREC QA (`../shared/data/trecqa`) with all-MiniLM-L6-v2 into an embedded
index (a directory: no service), reopens it as a reader would, and answers a few of the set's questions,
marking judged answers with ✓. The same from the shell:

    trivec index build --corpus ../shared/data/trecqa/corpus.jsonl --index runs/trecqa-index
    trivec search --index runs/trecqa-index "What is Crips ' gang color ?" --top-k 3

Usage: python examples/search_demo.py [--index DIR] [--queries N] [--top-k K]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from trivec import Embedder
from trivec.retrieval import Index, read_corpus

DATA = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--index", type=Path, default=None, help="Keep the index here (default: a temporary directory)."
    )
    parser.add_argument("--queries", type=int, default=4, help="How many of the set's questions to ask.")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()

    folder = DATA / "trecqa"
    if not folder.is_dir():
        sys.exit(f"search_demo: {folder} not found (set TRIVEC_SHARED to the shared/ folder)")
    docs = read_corpus(folder / "corpus.jsonl")
    queries = [
        json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    relevant = {tuple(line.split("\t")[:2]) for line in (folder / "qrels.tsv").read_text().splitlines()[1:]}

    with tempfile.TemporaryDirectory(prefix="trivec-demo-") as tmp:
        path = args.index or Path(tmp) / "trecqa-index"
        embedder = Embedder.from_pretrained("default")
        print(f"model: all-MiniLM-L6-v2 (offline default; modes {', '.join(embedder.available_modes())})")

        started = time.perf_counter()
        index = Index.create(path, embedder, overwrite=True)
        index.add(docs)
        index.close()
        print(f"indexed {len(docs)} sentences in {time.perf_counter() - started:.1f} s → {path}")

        started = time.perf_counter()
        index = Index.open(path, embedder)  # the model is checked against the one that built the index
        info = index.info()
        print(
            f"reopened in {(time.perf_counter() - started) * 1000:.1f} ms: {info['documents']} documents, "
            f"{info['bytes']['total'] / 1e6:.1f} MB on disk ({info['bytes_per_stored_row']['dense']:.0f} bytes/doc dense)\n"
        )

        asked = [q for q in queries if any(qid == q["id"] for qid, _ in relevant)][: args.queries]
        started = time.perf_counter()
        results = index.search([q["text"] for q in asked], top_k=args.top_k)  # one batch, prompt applied
        elapsed = (time.perf_counter() - started) * 1000
        for query, hits in zip(asked, results, strict=True):
            print(f"Q: {query['text']}")
            for rank, hit in enumerate(hits, start=1):  # type: ignore[arg-type]
                mark = "✓" if (query["id"], hit.doc_id) in relevant else " "
                print(f"  {rank}. {mark} {hit.score:.3f}  {hit.text[:110]}")
            print()
        print(f"{len(asked)} queries in {elapsed:.0f} ms (query encoding included); ✓ = judged answer")
        index.close()


if __name__ == "__main__":
    main()
