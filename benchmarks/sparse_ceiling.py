"""How much of BM25's lead over an M3 sparse head is out of the head's reach? (docs/m3-training.md)

An M3 sparse head scores `Σ_t w_q(t) · w_d(t)` over the model-tokenizer tokens a query and a document share,
each token's weight the max over its occurrences: no stemming, no query expansion, no term-frequency count
and no document-length normalisation unless the contextual weights learn them. This script scores every
retrieval task of the M3 recipe's table four ways with no model run at all (nDCG@10 × 100):

- `bm25`: trivec's BM25 baseline (Snowball-stemmed words without stop words; CJK character bigrams), the
  column `trivec eval` reports;
- `bm25 model tokens`: the same BM25 (k1 1.5, b 0.75) over the model tokenizer's pieces: what stemming and
  word-level tokens are worth;
- `idf, M3 form`: the M3 sparse form with fixed weights `w(t) = sqrt(idf(t))` on both sides, so a shared
  token adds its IDF once: BM25 without tf saturation and length normalisation, a context-free head;
- `idf + length, M3 form`: as above with the document side divided by BM25's length factor (tf = 1): what
  length normalisation adds, which a head can only learn through context;
- `% unknown pieces`: the share of the corpus's model-tokenizer pieces that are the unknown token, text no
  lexical matching over those pieces can see.

    python benchmarks/sparse_ceiling.py [--model default | --tokenizer DIR] [--tasks vaswani-npl,cranfield,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from trivec import Embedder  # noqa: E402
from trivec.evaluation.bm25 import Bm25Config, Bm25Index  # noqa: E402
from trivec.evaluation.data import RetrievalData, load_retrieval  # noqa: E402
from trivec.evaluation.metrics import retrieval_scores  # noqa: E402
from trivec.evaluation.registry import builtin_tasks  # noqa: E402
from trivec.evaluation.search import top_k  # noqa: E402
from trivec.evaluation.tasks import Task, select_tasks  # noqa: E402
from trivec.training.sparse_init import bm25_idf  # noqa: E402

TASKS = "vaswani-npl,cranfield,cacm,lisa,cmrc2018-trial-retrieval"
DEPTH = 100
K1, B = Bm25Config().k1, Bm25Config().b  # the length factor of the M3-form columns
COLUMNS = ["bm25", "bm25 model tokens", "idf, M3 form", "idf + length, M3 form", "% unknown pieces"]


def ndcg10(data: RetrievalData, scores: Callable[[int], np.ndarray]) -> float:
    run = {}
    for q, query_id in enumerate(data.query_ids):
        values = scores(q)
        best = top_k(values, DEPTH)
        best = best[values[best] > 0]
        run[query_id] = {data.corpus_ids[i]: float(values[i]) for i in best}
    return 100 * retrieval_scores(data.qrels, run, k_values=[10])["ndcg_at_10"]


def piece_lists(tokenizer: Any, texts: Sequence[str]) -> tuple[list[list[int]], float]:
    """Each text's model-tokenizer piece ids (no special tokens, no length limit: the index sees whole
    texts), and the share of pieces that are the unknown token (text the tokenizer cannot represent)."""
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    unknown = sum(row.count(tokenizer.unk_token_id) for row in ids) / max(sum(len(row) for row in ids), 1)
    return [list(row) for row in ids], unknown


def m3_form(
    docs: list[list[int]], queries: list[list[int]], vocab_size: int, length_norm: bool
) -> Callable[[int], np.ndarray]:
    """Score = Σ over shared unique pieces of BM25's idf, optionally ÷ BM25's length factor at tf = 1."""
    n = len(docs)
    rows = [d for d, pieces in enumerate(docs) for _ in set(pieces)]
    cols = [t for pieces in docs for t in set(pieces)]
    binary = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, vocab_size))
    lengths = np.array([len(p) for p in docs], dtype=np.float64)
    factor = (K1 + 1) / (
        1 + K1 * (1 - B + B * lengths / max(lengths.mean(), 1.0))
    )  # BM25's tf part at tf = 1
    weighted = sp.diags(factor if length_norm else np.ones(n)) @ binary @ sp.diags(bm25_idf(docs, vocab_size))
    weighted = weighted.tocsc()

    def scores(q: int) -> np.ndarray:
        terms = sorted(set(queries[q]))
        return np.asarray(weighted[:, terms].sum(axis=1)).ravel() if terms else np.zeros(n)

    return scores


def task_row(task: Task, tokenizer: Any) -> list[float]:
    """The task's nDCG@10 × 100 in each scoring of COLUMNS, then its share of unknown pieces (%)."""
    data = load_retrieval(task)
    bm25 = Bm25Index(data.corpus_texts, task.languages[0])
    docs, unknown = piece_lists(tokenizer, data.corpus_texts)
    queries, _ = piece_lists(tokenizer, data.query_texts)
    vocab_size = len(tokenizer)
    piece_bm25 = Bm25Index([" ".join(map(str, p)) for p in docs], task.languages[0], tokenize=str.split)

    return [
        ndcg10(data, lambda q: bm25.scores(data.query_texts[q])),
        ndcg10(data, lambda q: piece_bm25.scores(" ".join(map(str, queries[q])))),
        ndcg10(data, m3_form(docs, queries, vocab_size, length_norm=False)),
        ndcg10(data, m3_form(docs, queries, vocab_size, length_norm=True)),
        100 * unknown,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="default", help="whose tokenizer the sparse head sees")
    parser.add_argument(
        "--tokenizer", default=None, help="a tokenizer folder instead of the model's (e.g. the XLM-R one)"
    )
    parser.add_argument("--tasks", default=TASKS)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    else:
        tokenizer = Embedder.from_pretrained(args.model, device="cpu").tokenizer
    table: list[tuple[str, list[float]]] = []
    for task in select_tasks(args.tasks, builtin_tasks()):
        values = task_row(task, tokenizer)
        table.append((f"{task.name} ({task.languages[0]})", values))
        scores = ", ".join(f"{c} {v:.2f}" for c, v in zip(COLUMNS, values, strict=True))
        print(f"{task.name}: {scores}", file=sys.stderr, flush=True)
    lines = ["| task | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    lines += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |" for name, values in table]
    averages = np.mean([values for _, values in table], axis=0)
    lines.append("| **average** | " + " | ".join(f"**{v:.2f}**" for v in averages) + " |")
    print("\n".join(lines))
    source = args.tokenizer or args.model
    print(f"\nnDCG@10 × 100, model tokens from `{source}`; {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
