"""Re-ranking benchmark: the hybrid top N of an M3 model re-ranked by ColBERT or by a cross-encoder.

    python benchmarks/rerank.py --model m3-small --reranker small=runs/reranker/small \\
        --tasks vaswani-npl,cranfield --queries 10 --depth 100 --output runs/reranker/bench.json

Per retrieval set, on one seeded subsample of its judged queries (the same for every row):
* none: dense ∪ sparse top N fused with the model's weights (`dense+sparse`, as `trivec eval` fuses it);
* colbert: the three-way hybrid (`all`: dense + sparse + ColBERT over the dense ∪ sparse top N);
* each cross-encoder: the hybrid top N (the `none` list) re-scored by the reranker, best first.
nDCG@10 over the subsample (pytrec_eval, `trivec.evaluation.metrics`) and milliseconds per query: the
queries' encoding plus ranking (batch time / queries), plus the cross-encoder's scoring of N pairs per query.
The corpus is encoded once per set (not in the latency). Cross-encoding N candidates per query is the cost:
on a small CPU, keep `--queries` low.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from trivec.evaluation.data import RetrievalData, load_retrieval
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators.base import EvalSettings
from trivec.evaluation.evaluators.retrieval import mode_plan
from trivec.evaluation.metrics import retrieval_scores
from trivec.evaluation.registry import builtin_tasks
from trivec.evaluation.search import ArrayQuery, DenseIndex, SparseIndex
from trivec.evaluation.tasks import select_tasks
from trivec.inference import Embedder
from trivec.inference.reranker import Reranker
from trivec.models.prompts import DOCUMENT, QUERY
from trivec.retrieval.searcher import candidate_depth, rank

Run = dict[str, dict[str, float]]


def as_unit(vectors: np.ndarray, encoder: TextEncoder) -> np.ndarray:
    """Dense vectors for cosine scoring (as the evaluator's): models that normalise are used as they are."""
    if encoder.embedder.model.normalize:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def subsample(data: RetrievalData, count: int, seed: int) -> list[int]:
    """A seeded subsample of the judged queries (all of them when there are `count` or fewer)."""
    total = len(data.query_ids)
    if count >= total:
        return list(range(total))
    return sorted(np.random.default_rng(seed).choice(total, count, replace=False).tolist())


def first_stages(
    embedder: Embedder, data: RetrievalData, picked: list[int], depth: int
) -> tuple[dict[str, Run], dict[str, list[np.ndarray]], dict[str, float]]:
    """`none` (dense+sparse) and `colbert` (all) runs of the picked queries: runs, candidate lists (corpus
    indices, best first) and seconds per query."""
    encoder = TextEncoder(embedder)
    defaults = embedder.fusion_defaults  # the model's weights and fusion, as `trivec eval` takes them
    settings = EvalSettings(
        weights=dict(defaults.weights),
        fusion=defaults.method,
        spreads=defaults.spreads,
        top_k=depth,
        rerank_k=depth,
    )
    docs = encoder.encode(data.corpus_texts, dense=True, sparse=True, colbert=True, prompt_name=DOCUMENT)
    assert docs.dense is not None and docs.sparse is not None
    docs.dense = as_unit(docs.dense, encoder)
    dense, sparse = DenseIndex(docs.dense), SparseIndex(docs.sparse)
    texts = [data.query_texts[q] for q in picked]
    runs: dict[str, Run] = {}
    lists: dict[str, list[np.ndarray]] = {}
    seconds: dict[str, float] = {}
    for name, mode in (("none", "dense+sparse"), ("colbert", "all")):
        start = time.perf_counter()
        queries = encoder.encode(texts, dense=True, sparse=True, colbert=mode == "all", prompt_name=QUERY)
        assert queries.dense is not None and queries.sparse is not None
        queries.dense = as_unit(queries.dense, encoder)
        indices, values = dense.search(queries.dense, depth)
        sparse_top = sparse.search(queries.sparse, depth)
        plan = mode_plan(mode, settings)
        ranked_lists = []
        for i in range(len(texts)):
            scorer = ArrayQuery(docs, queries, i, dense, (indices[i], values[i]), sparse_top[i])
            ranked_lists.append(rank(scorer, plan, candidate_depth(plan, grouped=False)).head(depth))
        seconds[name] = (time.perf_counter() - start) / len(texts)
        lists[name] = [r.keys for r in ranked_lists]
        runs[name] = {
            data.query_ids[q]: {data.corpus_ids[k]: float(s) for k, s in zip(r.keys, r.fused, strict=True)}
            for q, r in zip(picked, ranked_lists, strict=True)
        }
    return runs, lists, seconds


def cross_encode(
    reranker: Reranker, data: RetrievalData, picked: list[int], candidates: list[np.ndarray]
) -> tuple[Run, float]:
    """The candidates of each picked query re-scored by `reranker` (one batched call): run and seconds per
    query."""
    pairs = [
        (data.query_texts[q], data.corpus_texts[k])
        for q, keys in zip(picked, candidates, strict=True)
        for k in keys.tolist()
    ]
    start = time.perf_counter()
    scores = reranker.score(pairs)
    seconds = (time.perf_counter() - start) / len(picked)
    run: Run = {}
    at = 0
    for q, keys in zip(picked, candidates, strict=True):
        part = scores[at : at + len(keys)]
        at += len(keys)
        run[data.query_ids[q]] = {
            data.corpus_ids[k]: float(s) for k, s in zip(keys.tolist(), part, strict=True)
        }
    return run, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3-small", help="First-stage M3 model (default m3-small).")
    parser.add_argument(
        "--reranker", action="append", default=[], help="NAME=PATH of a cross-encoder; repeat."
    )
    parser.add_argument("--tasks", required=True, help="Comma-separated retrieval tasks.")
    parser.add_argument("--queries", type=int, default=100, help="Queries per set (seeded subsample).")
    parser.add_argument("--depth", type=int, default=100, help="Hybrid candidates re-ranked per query.")
    parser.add_argument("--max-length", type=int, default=256, help="Cross-encoder tokens per pair.")
    parser.add_argument("--dtype", default="bfloat16", help="Both models' dtype (bfloat16 on AMX CPUs).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", type=Path, required=True, help="JSON results (one entry per set).")
    args = parser.parse_args()
    rerankers = {}
    for spec in args.reranker:
        name, _, path = spec.partition("=")
        if not path:
            parser.error(f"--reranker {spec}: expected NAME=PATH")
        rerankers[name] = Reranker.from_pretrained(path, dtype=args.dtype, max_length=args.max_length)
    embedder = Embedder.from_pretrained(args.model, dtype=args.dtype)
    results: dict[str, Any] = json.loads(args.output.read_text()) if args.output.is_file() else {}
    for task in select_tasks(args.tasks, builtin_tasks()):
        if task.name in results:
            continue
        data = load_retrieval(task)
        picked = subsample(data, args.queries, args.seed)
        qrels = {data.query_ids[q]: data.qrels[data.query_ids[q]] for q in picked}
        runs, lists, seconds = first_stages(embedder, data, picked, args.depth)
        for name, reranker in rerankers.items():
            run, cost = cross_encode(reranker, data, picked, lists["none"])
            runs[name], seconds[name] = run, seconds["none"] + cost
        results[task.name] = {
            "queries": len(picked),
            "of": len(data.query_ids),
            "corpus": len(data.corpus_ids),
            "ndcg_at_10": {k: retrieval_scores(qrels, run)["ndcg_at_10"] for k, run in runs.items()},
            "ms_per_query": {k: 1000 * v for k, v in seconds.items()},
        }
        print(task.name, json.dumps(results[task.name]), flush=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
