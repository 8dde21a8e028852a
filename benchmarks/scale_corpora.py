"""The embedded index on the real corpora at their size (the synthetic 10k … 1M sizes: benchmarks/scale.py).

    python benchmarks/scale_corpora.py                          # every retrieval set of $TRIVEC_SHARED/data
    python benchmarks/scale_corpora.py --sets cranfield lisa --model default

Per set, as a user would: `trivec index build --model M --corpus <set>/corpus.jsonl` in a child process —
wall time (model load, encoding, writing) and peak RSS sampled as scale.py samples its builds — then, in this
process: bytes per document per representation (`Index.info`), open time (median of 5; the model the index
records loads on first need, untimed), and the set's own judged queries, encoded once beforehand with the
index's prompts, searched hybrid (dense + sparse) and hybrid + ColBERT with the model's fusion weights:
p50 / p95 from the encoded queries (as scale.py times them), p50 from the text (`Index.search`: query
encoding included), recall@100 against exact search over the index's own stored vectors (every row's dense
and sparse score, the union of both top 100 re-scored by MaxSim over the decoded stored ColBERT codes and
fused with the same weights: the candidate rule a search follows, computed exhaustively), and nDCG@10
against the set's judgements.

Every corpus of the shared data is below the dense ANN threshold (flat, exact dense search), so recall@100
is a check that the search pipeline is exact where it should be; `--dense-index hnsw` builds the HNSW graph
anyway, for its recall on real vectors (the synthetic sizes' is scale.py's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scale import K, cached_fraction, cpu_model, csr_of, exact_candidates, run_sampled
from trivec.evaluation.data import load_retrieval
from trivec.evaluation.metrics import retrieval_scores
from trivec.evaluation.registry import default_data_dir, read_task_index, task_from_dir
from trivec.evaluation.tasks import TaskType
from trivec.inference.scoring import hybrid_scores, maxsim_scores
from trivec.retrieval import Index
from trivec.retrieval.fusion import top_k

VOCAB = 250_002  # upper bound on term ids (XLM-R pieces); only the width of the CSR products


def retrieval_sets(data: Path) -> list[str]:
    """The retrieval folders of the data's `tasks.tsv`."""
    entries = read_task_index(data) or {}
    return [folder for folder, entry in entries.items() if entry.type == TaskType.RETRIEVAL]


def build(folder: Path, index_path: Path, model: str, dense_index: str) -> dict[str, Any]:
    """`trivec index build` of the set's corpus in a child process: wall seconds and sampled peak RSS."""
    command = [
        sys.executable,
        "-m",
        "trivec.cli",
        "index",
        "build",
        "--model",
        model,
        "--dense-index",
        dense_index,
    ]
    command += ["--corpus", str(folder / "corpus.jsonl"), "--index", str(index_path), "--overwrite", "-q"]
    started = time.perf_counter()
    _, peaks = run_sampled(command, f"index build of {folder.name}")
    return {"build_s": round(time.perf_counter() - started, 1), **peaks}


def stored_rows(index: Any, dim: int) -> dict[str, Any]:
    """Every stored row's chunk id, dense vector, lexical weights and decoded ColBERT tokens (`dim`: the
    model's ColBERT dimensions)."""
    ids: list[str] = []
    dense, sparse, colbert = [], [], []
    codec = index.codec
    for segment in index.segments:
        rows = np.arange(segment.rows, dtype=np.int64)
        ids += [segment.chunk_id(int(r)) for r in rows]
        dense.append(np.asarray(segment.dense_all(), dtype=np.float32))
        sparse += segment.sparse_vectors(rows)
        for r in rows.tolist():
            codes, scales = segment.colbert_codes(r)
            colbert.append(codec.decode(codes, scales, codec.stored_dim(dim)))
    return {"ids": ids, "dense": np.concatenate(dense), "sparse": sparse, "colbert": colbert}


def exact_top(stored: dict[str, Any], queries: Any, codec: Any, weights: dict[str, float]) -> list[set[str]]:
    """Per query, the chunk ids of the exact fused top 100 (the search's candidate rule, exhaustively)."""
    inverted = csr_of(stored["sparse"], VOCAB).T.tocsr()
    truths = []
    for q in range(queries.dense.shape[0]):
        d = stored["dense"] @ queries.dense[q].astype(np.float32)
        s = np.asarray((csr_of([queries.sparse[q]], VOCAB) @ inverted).todense()).ravel()
        cands = exact_candidates(d, s)
        scores = {"dense": d[cands], "sparse": s[cands]}
        if weights.get("colbert", 0.0) > 0:
            tokens = [stored["colbert"][c] for c in cands]
            scores["colbert"] = maxsim_scores(codec.project(queries.colbert[q]), tokens)
        fused = np.asarray(hybrid_scores(scores, weights), dtype=np.float64)
        truths.append({stored["ids"][c] for c in cands[top_k(fused, K)].tolist()})
    return truths


def measure(folder: Path, index_path: Path, embedder: Any) -> dict[str, Any]:
    """Bytes, open time, latency, recall@100 vs exact and nDCG@10 of one built index."""
    data = load_retrieval(task_from_dir(folder)[0])  # judged queries, as `trivec eval` reads them
    query_ids, qrels = data.query_ids, data.qrels
    texts = dict(zip(data.query_ids, data.query_texts, strict=True))
    opened = []
    for _ in range(5):  # opened as scale.py opens (the model recorded, loaded on first need)
        started = time.perf_counter()
        index = Index.open(index_path)
        opened.append(1000 * (time.perf_counter() - started))
        index.wait_checked()
        index.close()
    index = Index.open(index_path, embedder)
    index.wait_checked()
    info = index.info()
    n = info["documents"]
    if info["chunks"] != n:  # recall compares rows with hits; a chunked document collapses into one hit
        raise SystemExit(f"{index_path}: {info['chunks']} chunks for {n} documents; build it unchunked")
    out: dict[str, Any] = {
        "documents": n,
        "queries": len(query_ids),
        "open_ms_median": round(float(np.median(opened)), 1),
        "bytes_per_doc": {k: round(v / n, 1) for k, v in info["bytes"].items()},
        "segments": len(info["segments"]),
        "page_cache": cached_fraction(index_path),
    }
    queries = embedder.encode(
        [texts[q] for q in query_ids], dense=True, sparse=True, colbert=True, prompt=index.prompt("query")
    )
    model_weights = embedder.fusion_weights
    stored = stored_rows(index, int(queries.colbert[0].shape[1]))
    for mode, weights in (
        ("hybrid", {**model_weights, "colbert": 0.0}),
        ("hybrid+colbert", dict(model_weights)),
    ):
        truths = exact_top(stored, queries, index.codec, weights)
        latencies, recalls, run = [], [], {}
        for q, query_id in enumerate(query_ids):
            one = queries.take([q])
            if weights["colbert"] == 0:
                one.colbert = None
            started = time.perf_counter()
            # weighted, as `exact_top` fuses: recall measures the search, not a difference of fusions
            hits = index.search_vectors(one, top_k=K, mode="hybrid", weights=weights, fusion="weighted")[0]
            latencies.append(1000 * (time.perf_counter() - started))
            recalls.append(len({h.id for h in hits} & truths[q]) / max(1, len(truths[q])))
            run[query_id] = {h.doc_id: h.score for h in hits}
        from_text = []
        for query_id in query_ids:
            started = time.perf_counter()
            index.search(texts[query_id], top_k=K, mode="hybrid", weights=weights, fusion="weighted")
            from_text.append(1000 * (time.perf_counter() - started))
        out[mode] = {
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "p50_ms_from_text": round(float(np.percentile(from_text, 50)), 2),
            "recall@100": round(float(np.mean(recalls)), 4),
            "ndcg@10": round(100 * retrieval_scores(qrels, run)["ndcg_at_10"], 2),
        }
    index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", help="folders of the shared data (default: its retrieval sets)")
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--dense-index",
        default="auto",
        help="the index setting: auto (every shared corpus is below the HNSW threshold, so flat) or hnsw, to "
        "measure the graph's recall on real vectors",
    )
    parser.add_argument("--root", type=Path, default=Path("/tmp/trivec-scale-corpora"))
    parser.add_argument("--results", type=Path, default=Path("/tmp/trivec-scale-corpora/results.jsonl"))
    args = parser.parse_args()
    from trivec import Embedder

    data = default_data_dir()
    args.sets = args.sets or retrieval_sets(data)
    unknown = [name for name in args.sets if not (data / name / "corpus.jsonl").is_file()]
    if unknown:
        known = ", ".join(retrieval_sets(data)) or "none listed in its tasks.tsv"
        raise SystemExit(f"no corpus.jsonl under {data} for: {', '.join(unknown)} (retrieval sets: {known})")
    args.root.mkdir(parents=True, exist_ok=True)
    embedder = None
    for name in args.sets:
        folder = data / name
        index_path = args.root / name
        row: dict[str, Any] = {"set": name, "model": args.model, "dense_index": args.dense_index}
        row["load_before"] = os.getloadavg()
        row.update(build(folder, index_path, args.model, args.dense_index))
        if embedder is None:  # loaded after the first build: the child's peak is the build's alone
            embedder = Embedder.from_pretrained(args.model)
        row.update(measure(folder, index_path, embedder))
        row["cpu"] = cpu_model()
        row["load_after"] = os.getloadavg()
        row["date"] = time.strftime("%Y-%m-%d %H:%M")
        print(json.dumps(row), flush=True)
        with args.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
    print_table([json.loads(line) for line in args.results.read_text(encoding="utf-8").splitlines()])


def print_table(rows: list[dict[str, Any]]) -> None:
    """The rows as a Markdown table (the last row of each set and dense index)."""
    latest = {(row["set"], row.get("dense_index", "auto")): row for row in rows}
    print(f"\nCPU: {cpu_model()}\n")
    head = "| set | dense index | docs | build s | peak RSS MiB | bytes / doc (ColBERT) | open ms | hybrid p50 / p95 ms | "
    head += "hybrid+ColBERT p50 / p95 ms | hybrid+ColBERT from text p50 ms | recall@100 | "
    head += "nDCG@10 hybrid / +ColBERT |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for row in latest.values():
        total, colbert = row["bytes_per_doc"]["total"], row["bytes_per_doc"]["colbert"]
        h, a = row["hybrid"], row["hybrid+colbert"]
        print(
            f"| {row['set']} | {row.get('dense_index', 'auto')} | {row['documents']:,} | {row['build_s']:.0f} | "
            f"{row['build_peak_rss_sampled_mib']:,.0f} | {total:,.0f} ({colbert:,.0f}) | "
            f"{row['open_ms_median']:.0f} | {h['p50_ms']:.2f} / {h['p95_ms']:.2f} | "
            f"{a['p50_ms']:.2f} / {a['p95_ms']:.2f} | {a['p50_ms_from_text']:.1f} | "
            f"{min(h['recall@100'], a['recall@100']):.4f} | {h['ndcg@10']:.2f} / {a['ndcg@10']:.2f} |"
        )


if __name__ == "__main__":
    main()
