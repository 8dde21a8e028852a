"""Search benchmark: trivec's embedded index side by side with Qdrant's embedded engines on the same vectors.

    python benchmarks/search.py            # 100k synthetic documents + Cranfield (≈10-15 min on 2 cores)
    python benchmarks/search.py --quick    # 20k documents, fewer queries (≈3 min)

Rows (one run, one table):
* scale: N synthetic documents with vectors of real shapes — dense 384 (MiniLM) and 1024 (BGE-M3), sparse
  ~60 non-zeros over a 250,002-token vocabulary (Zipf-distributed ids, as real lexical weights are), ColBERT
  vectors of 32 tokens × 128 dims (M3 with the reduced-dimension option) for the 384 set; plus a ColBERT
  1024-d (M3's own width) subset of 10k documents for the re-rank cost at full width. Dense vectors come
  from a clustered, anisotropic distribution (unit length), queries are perturbed documents.
* real: Cranfield (1,400 abstracts, 225 queries) with the default model's real embeddings (dense).
* dense-codes: the flat dense first stage over float32, int8 and binary codes (`dense_quantization`,
  re-scored exactly from float32 at the default oversampling; `--dense-oversampling` adds others) on the
  384-d synthetic set, on the same set in a random orthonormal basis (every inner product and so every exact
  neighbour unchanged; no dimension singled out, as in real embeddings) and on Cranfield's real MiniLM
  vectors: p50 / p95 per query at k = 10 and 100, recall@10 / @100 against exact search, and the bytes per
  document the first stage scans (and keeps resident) — `--dense-codes-only` runs just this section.
* colbert-quality: what fp16 / int8 / reduced dimensions cost, on real token vectors (MiniLM's normalised
  last hidden states as a ColBERT stand-in — the only real multi-vector model available offline) re-ranking
  the dense top 100 of Cranfield: nDCG@10 and top-10 agreement with fp32.

Per engine: build time, bytes per document per representation, p50/p95 latency of one query (query encoding
excluded) — also with one other CPU-bound process running beside the benchmark ("1 busy core": a server
encodes queries on the same cores while it searches) — for dense, sparse, hybrid (dense ∪ sparse top 100, weighted fusion) and hybrid + ColBERT re-rank of
those candidates, and recall@100 against exact search (the same pipeline with brute-force first stages).
Engines: trivec embedded (HNSW for the dense graph past 50k rows, else exact), qdrant-edge-py (Qdrant Edge,
the in-process Rust engine; HNSW for dense, same hnsw_ef), and qdrant-client local mode (pure Python,
exact; only a few queries — it takes seconds per sparse query at 100k). Qdrant runs the same algorithm as
trivec's Qdrant backend: one prefetch query for the candidates (+ ColBERT MaxSim), one batch for per-mode
scores, fused in numpy.

trivec's index checks its files against checksums (docs/retrieval.md, "Integrity"): the notes give the cost at
open, the background check of every block after opening, `index verify`, and per query (interleaved rounds
with the checks on and off, after the background check; before it, a query also hashes the 64 KiB blocks it
reads for the first time).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from trivec import Embedder, EncodeResult  # noqa: E402
from trivec.evaluation.data import read_qrels  # noqa: E402
from trivec.inference.scoring import hybrid_scores, maxsim_scores  # noqa: E402
from trivec.inference.sparse import SparseVector  # noqa: E402
from trivec.retrieval import Document, Index, IndexSettings, top_k  # noqa: E402
from trivec.retrieval.colbert import ColbertCodec, fit_projection  # noqa: E402

SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
CACHE = REPO / "benchmarks" / ".cache" / "search"
VOCAB = 250_002
K = 100
HYBRID = {"dense": 0.4, "sparse": 0.2, "colbert": 0.0}
ALL = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
HNSW = IndexSettings()  # graph settings: trivec's defaults, used for qdrant-edge too


# ----------------------------------------------------------------------------------------------- data
def synthetic(
    n: int, dim: int, n_queries: int, colbert_dim: int | None, tokens: int, seed: int
) -> dict[str, Any]:
    """Documents and queries with real shapes: clustered unit dense vectors, Zipf sparse ids, token matrices."""
    rng = np.random.default_rng(seed)
    spectrum = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    centers = rng.standard_normal((max(64, n // 100), dim)).astype(np.float32) * spectrum
    assign = rng.integers(0, centers.shape[0], n)
    dense = centers[assign] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32) * spectrum
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    source = rng.choice(n, n_queries, replace=False)
    noise = 0.8 * rng.standard_normal((n_queries, dim)).astype(np.float32) * spectrum
    queries = dense[source] + noise
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ranks = np.arange(1, VOCAB - 3, dtype=np.float64)
    p = ranks**-1.0
    p /= p.sum()
    cdf = np.cumsum(p)
    doc_sparse = []
    for _ in range(n):
        ids = np.unique(np.searchsorted(cdf, rng.random(70)) + 4)[:60]
        doc_sparse.append(
            SparseVector(ids.astype(np.int32), rng.lognormal(-2.0, 0.6, ids.shape[0]).astype(np.float32))
        )
    query_sparse = []
    for s in source:
        own = doc_sparse[s].indices
        pick = rng.choice(own, min(len(own), 6), replace=False)
        extra = np.searchsorted(cdf, rng.random(6)) + 4
        ids = np.unique(np.concatenate([pick, extra]))
        query_sparse.append(
            SparseVector(ids.astype(np.int32), rng.lognormal(-1.5, 0.5, ids.shape[0]).astype(np.float32))
        )
    out: dict[str, Any] = {"dense": dense, "sparse": doc_sparse, "q_dense": queries, "q_sparse": query_sparse}
    if colbert_dim:

        def matrices(count: int, base: np.ndarray | None) -> list[np.ndarray]:
            rows = []
            for i in range(count):
                m = rng.standard_normal((tokens, colbert_dim)).astype(np.float32)
                if base is not None:
                    m[: tokens // 2] += 2.0 * base[i][: tokens // 2]
                rows.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))
            return rows

        docs_cb = matrices(n, None)
        out["colbert"] = docs_cb
        out["q_colbert"] = [
            (q := np.concatenate([docs_cb[s][:8], rng.standard_normal((8, colbert_dim)).astype(np.float32)]))
            / np.linalg.norm(q, axis=1, keepdims=True)
            for s in source
        ]
    return out


def csr(vectors: list[SparseVector]) -> sp.csr_matrix:
    lengths = np.array([len(v) for v in vectors])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sp.csr_matrix(
        (
            np.concatenate([v.values for v in vectors]).astype(np.float64),
            np.concatenate([v.indices for v in vectors]),
            indptr,
        ),
        shape=(len(vectors), VOCAB),
    )


# ----------------------------------------------------------------------------------------------- exact
class Exact:
    """Brute-force reference: exact dense and sparse first stages, then the same fusion / re-rank."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.matrix_t = csr(data["sparse"]).T.tocsr()

    def dense(self, q: int) -> np.ndarray:
        return self.data["dense"] @ self.data["q_dense"][q]

    def sparse(self, q: int) -> np.ndarray:
        return np.asarray((csr([self.data["q_sparse"][q]]) @ self.matrix_t).todense()).ravel()

    def top(self, mode: str, q: int) -> np.ndarray:
        d, s = self.dense(q), self.sparse(q)
        if mode == "dense":
            return top_k(d, K)
        if mode == "sparse":
            best = top_k(s, K)
            return best[s[best] > 0]
        dt, st = top_k(d, K), top_k(s, K)
        cands = np.array(list(dict.fromkeys([*dt.tolist(), *st[s[st] > 0].tolist()])))
        parts = {"dense": d[cands], "sparse": s[cands]}
        weights = HYBRID
        if mode == "hybrid+colbert":
            parts["colbert"] = maxsim_scores(
                self.data["q_colbert"][q], [self.data["colbert"][i] for i in cands]
            )
            weights = ALL
        fused = np.asarray(hybrid_scores(parts, weights), dtype=np.float64)
        return cands[top_k(fused, K)]


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    values = [
        len(set(f.tolist()) & set(t.tolist())) / max(len(t), 1) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(values))


@contextmanager
def busy_core() -> Iterator[None]:
    """One other CPU-bound process (a Python busy loop) for the block: on a 2-core machine, one busy core."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it get going
        yield
    finally:
        hog.kill()
        hog.wait()


def timed(fn: Callable[[int], np.ndarray], queries: list[int]) -> tuple[list[np.ndarray], list[float]]:
    fn(queries[0])  # warm up (page cache, lazy graph load)
    results, latencies = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(fn(q))
        latencies.append((time.perf_counter() - start) * 1000)
    return results, latencies


# ----------------------------------------------------------------------------------------------- trivec
def encoded_queries(data: dict[str, Any], q: int, colbert: bool) -> EncodeResult:
    return EncodeResult(
        dense=data["q_dense"][q : q + 1],
        sparse=[data["q_sparse"][q]],
        colbert=[data["q_colbert"][q]] if colbert else None,
    )


def trivec_engine(
    embedder: Embedder, data: dict[str, Any], root: Path, colbert: bool, ids: list[str], ef: int
) -> dict[str, Any]:
    path = root / "trivec"
    index = Index.create(path, embedder, colbert_dtype="float16", colbert=colbert, hnsw_ef_search=ef)
    n = len(ids)

    def batches() -> Any:
        for start in range(0, n, 10_000):
            stop = min(n, start + 10_000)
            yield (
                [Document(id=ids[i], text="") for i in range(start, stop)],
                EncodeResult(
                    dense=data["dense"][start:stop],
                    sparse=data["sparse"][start:stop],
                    colbert=data["colbert"][start:stop] if colbert else None,
                ),
            )

    started = time.perf_counter()
    index.add_encoded_batches(batches())
    build = time.perf_counter() - started
    index.close()
    open_ms, open_unchecked_ms = opening_costs(path, embedder)
    t = time.perf_counter()
    index = Index.open(path, embedder)
    index.wait_checked()  # the background check of every block (queries meanwhile hash what they read)
    checked_s = time.perf_counter() - t
    t = time.perf_counter()
    problems = index.verify()["problems"]
    verify_s = time.perf_counter() - t
    assert not problems, problems
    info = index.info()
    saved = {seg.name: seg.checks for seg in index.segments}

    def set_checks(on: bool) -> None:
        for seg in index.segments:
            seg.checks = saved[seg.name] if on else {}

    row_of = {doc_id: i for i, doc_id in enumerate(ids)}

    def run(mode: str) -> Callable[[int], np.ndarray]:
        plan = {
            "dense": {"mode": "dense"},
            "sparse": {"mode": "sparse"},
            "hybrid": {"mode": "hybrid", "weights": HYBRID},
            "hybrid+colbert": {"mode": "hybrid", "weights": ALL},
        }[mode]

        def search(q: int) -> np.ndarray:
            hits = index.search_vectors(encoded_queries(data, q, colbert), top_k=K, **plan)[0]  # type: ignore[arg-type]
            return np.array([row_of[h.doc_id] for h in hits], dtype=np.int64)

        return search

    sizes = info["bytes"]
    return {
        "run": run,
        "build_s": build,
        "open_ms": open_ms,
        "open_unchecked_ms": open_unchecked_ms,
        "checked_s": checked_s,
        "verify_s": verify_s,
        "set_checks": set_checks,
        "bytes": {k: v / n for k, v in sizes.items()},
        "close": index.close,
        # a second graph budget on the same index: trivec's recall at (or above) Qdrant Edge's, and its cost
        "set_ef": lambda ef: setattr(index.settings, "hnsw_ef_search", ef),
    }


def opening_costs(path: Path, embedder: Embedder, times: int = 10) -> tuple[float, float]:
    """Median ms to open the index, as it opens (the checksum table, the small files and their offsets
    checked), and with no small file hashed at open (the term table excepted): the checks' share."""
    from trivec.retrieval import segment

    def median_open() -> float:
        spent = []
        for _ in range(times):
            started = time.perf_counter()
            index = Index.open(path, embedder)
            spent.append((time.perf_counter() - started) * 1000)
            index.wait_checked()  # let its background check finish before the next open is timed
            index.close()
        return float(np.median(spent))

    checked = median_open()
    saved = segment.CHECK_AT_OPEN
    segment.CHECK_AT_OPEN = -1
    try:
        unchecked = median_open()
    finally:
        segment.CHECK_AT_OPEN = saved
    return checked, unchecked


# ----------------------------------------------------------------------------------------------- qdrant edge
def edge_engine(data: dict[str, Any], root: Path, colbert: bool, ef: int) -> dict[str, Any] | None:
    try:
        import qdrant_edge as qe
    except ImportError:
        return None
    dim = data["dense"].shape[1]
    vectors = {"dense": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot)}
    if colbert:
        vectors["colbert"] = qe.EdgeVectorParams(
            size=data["colbert"][0].shape[1],
            distance=qe.Distance.Dot,
            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            datatype=qe.VectorStorageDatatype.Float16,
            hnsw_config=qe.HnswIndexConfig(
                m=0, ef_construct=HNSW.hnsw_ef_construction, full_scan_threshold=10_000
            ),
        )
    config = qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors={"sparse": qe.EdgeSparseVectorParams()},
        hnsw_config=qe.HnswIndexConfig(
            m=HNSW.hnsw_m, ef_construct=HNSW.hnsw_ef_construction, full_scan_threshold=10_000
        ),
    )
    path = root / "edge"
    shard = qe.EdgeShard.create(str(path), config)
    n = data["dense"].shape[0]
    started = time.perf_counter()
    for start in range(0, n, 2000):
        points = []
        for i in range(start, min(n, start + 2000)):
            sv = data["sparse"][i]
            vector: dict[str, Any] = {
                "dense": data["dense"][i].tolist(),
                "sparse": qe.SparseVector(indices=sv.indices.tolist(), values=sv.values.tolist()),
            }
            if colbert:
                vector["colbert"] = data["colbert"][i].tolist()
            points.append(qe.Point(id=i, vector=vector))
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.optimize()
    build = time.perf_counter() - started
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    params = qe.SearchParams(hnsw_ef=ef)

    def sparse_of(q: int) -> Any:
        sv = data["q_sparse"][q]
        return qe.SparseVector(indices=sv.indices.tolist(), values=sv.values.tolist())

    def run(mode: str) -> Callable[[int], np.ndarray]:
        def search(q: int) -> np.ndarray:
            dense = data["q_dense"][q].tolist()
            if mode == "dense":
                found = shard.query(
                    qe.QueryRequest(limit=K, query=qe.Query.Nearest(dense, using="dense"), params=params)
                )
                return np.array([p.id for p in found], dtype=np.int64)
            if mode == "sparse":
                found = shard.query(
                    qe.QueryRequest(limit=K, query=qe.Query.Nearest(sparse_of(q), using="sparse"))
                )
                return np.array([p.id for p in found if p.score > 0], dtype=np.int64)
            prefetch = [
                qe.Prefetch(limit=K, query=qe.Query.Nearest(dense, using="dense"), params=params),
                qe.Prefetch(limit=K, query=qe.Query.Nearest(sparse_of(q), using="sparse")),
            ]
            if mode == "hybrid+colbert":
                cq = data["q_colbert"][q]
                found = shard.query(
                    qe.QueryRequest(
                        limit=2 * K, prefetches=prefetch, query=qe.Query.Nearest(cq.tolist(), using="colbert")
                    )
                )
            else:
                found = shard.query(
                    qe.QueryRequest(limit=2 * K, prefetches=prefetch, query=qe.Fusion.Rrf(k=60))
                )
            ids = [p.id for p in found]
            flt = qe.Filter(must=[qe.HasIdCondition(set(ids))])
            dense_r, sparse_r = shard.query_batch(
                qe.QueryBatchRequest(
                    [
                        qe.QueryRequest(
                            limit=len(ids),
                            query=qe.Query.Nearest(dense, using="dense"),
                            filter=flt,
                            params=qe.SearchParams(exact=True),
                        ),
                        qe.QueryRequest(
                            limit=len(ids), query=qe.Query.Nearest(sparse_of(q), using="sparse"), filter=flt
                        ),
                    ]
                )
            )
            d = {p.id: p.score for p in dense_r}
            s = {p.id: p.score for p in sparse_r}
            parts = {
                "dense": np.array([d.get(i, 0.0) for i in ids]),
                "sparse": np.array([s.get(i, 0.0) for i in ids]),
            }
            weights = HYBRID
            if mode == "hybrid+colbert":
                parts["colbert"] = np.array([p.score for p in found]) / data["q_colbert"][q].shape[0]
                weights = ALL
            fused = np.asarray(hybrid_scores(parts, weights), dtype=np.float64)
            return np.array(ids, dtype=np.int64)[top_k(fused, K)]

        return search

    return {"run": run, "build_s": build, "bytes": {"total": size / n}, "close": shard.close}


# ----------------------------------------------------------------------------------------------- qdrant local
def local_engine(
    embedder: Embedder, data: dict[str, Any], root: Path, colbert: bool, ids: list[str], n: int
) -> dict[str, Any]:
    index = Index.create(root / "qdrant-local", embedder, backend="qdrant", url=":memory:", colbert=colbert)
    started = time.perf_counter()
    for start in range(0, n, 5000):
        stop = min(n, start + 5000)
        index.add_encoded(
            [Document(id=ids[i], text="") for i in range(start, stop)],
            EncodeResult(
                dense=data["dense"][start:stop],
                sparse=data["sparse"][start:stop],
                colbert=data["colbert"][start:stop] if colbert else None,
            ),
        )
    build = time.perf_counter() - started
    row_of = {doc_id: i for i, doc_id in enumerate(ids)}

    def run(mode: str) -> Callable[[int], np.ndarray]:
        plan = {
            "dense": ("dense", None),
            "sparse": ("sparse", None),
            "hybrid": ("hybrid", HYBRID),
            "hybrid+colbert": ("hybrid", ALL),
        }[mode]

        def search(q: int) -> np.ndarray:
            hits = index.search_vectors(
                encoded_queries(data, q, colbert), top_k=K, mode=plan[0], weights=plan[1]
            )[0]
            return np.array([row_of[h.doc_id] for h in hits], dtype=np.int64)

        return search

    modes = ["dense", "sparse", "hybrid"] + (["hybrid+colbert"] if colbert else [])
    return {"run": run, "build_s": build, "bytes": {}, "close": index.close, "modes": modes}


# ----------------------------------------------------------------------------------------------- model stand-in
def vector_model(dim: int, root: Path) -> Embedder:
    """A model with the data's shapes for the index's model record (XLM-R tokenizer and layout, dense `dim`,
    sparse head, ColBERT head of 128 dims). Random weights, never run on text here: the scale rows feed
    pre-computed vectors, which is what `Index.add_encoded_batches` is for."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    from trivec.models import M3Model
    from trivec.models.heads import ColbertHead, SparseHead

    tokenizer = AutoTokenizer.from_pretrained(SHARED / "fixtures" / "xlmr-tokenizer")
    config = XLMRobertaConfig(
        vocab_size=1000,
        hidden_size=dim,
        num_hidden_layers=1,
        num_attention_heads=8,
        intermediate_size=64,
        max_position_embeddings=514,
    )
    torch.manual_seed(0)
    backbone = XLMRobertaModel(config)
    model = M3Model(backbone, tokenizer, "cls", True, SparseHead(dim), ColbertHead(dim, 128))
    directory = root / f"model-{dim}"
    model.save_pretrained(directory)
    return Embedder.from_pretrained(directory, device="cpu")


# ----------------------------------------------------------------------------------------------- rows
def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def scale_rows(args: argparse.Namespace, dim: int, colbert: bool, root: Path) -> list[dict[str, Any]]:
    n = args.docs
    label = f"scale {n // 1000}k×{dim}" + (" +ColBERT128" if colbert else "")
    print(f"[{label}] generating vectors …", file=sys.stderr, flush=True)
    data = synthetic(n, dim, args.queries, 128 if colbert else None, 32, seed=dim)
    exact = Exact(data)
    modes = ["dense", "sparse", "hybrid"] + (["hybrid+colbert"] if colbert else [])
    queries = list(range(args.queries))
    truth = {mode: [exact.top(mode, q) for q in queries] for mode in modes}
    exact_ms: dict[str, float] = {}
    for mode in ("dense", "sparse"):
        fn = exact.dense if mode == "dense" else exact.sparse
        _, lat = timed(lambda q, fn=fn: top_k(fn(q), K), queries[:50])
        exact_ms[mode] = pct(lat, 50)
    ids = [f"d{i}" for i in range(n)]
    rows: list[dict[str, Any]] = []
    embedder = vector_model(dim, root)
    engines: list[tuple[str, Callable[[], dict[str, Any] | None], list[int]]] = [
        (
            "trivec embedded",
            lambda: trivec_engine(embedder, data, root / f"t{dim}", colbert, ids, args.ef),
            queries,
        ),
        ("qdrant-edge", lambda: edge_engine(data, root / f"e{dim}", colbert, args.ef), queries),
    ]
    if args.qdrant_local_queries:  # dense + sparse only: ColBERT points at this scale exhaust local mode
        engines.append(
            (
                "qdrant-client local",
                lambda: local_engine(embedder, data, root / f"l{dim}", False, ids, n),
                queries[: args.qdrant_local_queries],
            )
        )
    for name, make, qs in engines:
        print(f"[{label}] {name}: build …", file=sys.stderr, flush=True)
        engine = make()
        if engine is None:
            print(f"[{label}] {name}: not installed (pip install qdrant-edge-py)", file=sys.stderr)
            continue
        variants = [(name, None)]
        if "set_ef" in engine:
            variants += [(f"{name}, ef_search {ef}", ef) for ef in args.trivec_extra_ef if ef != args.ef]
        for (shown, ef), mode in itertools.product(variants, modes):
            if mode not in engine.get("modes", modes) or (ef is not None and mode in ("dense", "sparse")):
                continue  # other budgets: for the hybrid modes, whose recall is compared at equal footing
            if "set_ef" in engine:
                engine["set_ef"](ef or args.ef)
            print(f"[{label}] {shown}: {mode} ({len(qs)} queries)", file=sys.stderr, flush=True)
            found, lat = timed(engine["run"](mode), qs)
            rows.append(
                {
                    "set": label,
                    "engine": shown,
                    "mode": mode,
                    "queries": len(qs),
                    "p50_ms": pct(lat, 50),
                    "p95_ms": pct(lat, 95),
                    "recall@100": recall(found, truth[mode][: len(qs)]),
                    "build_s": engine["build_s"],
                    "bytes_per_doc": engine["bytes"],
                    "open_ms": engine.get("open_ms"),
                    "exact_p50_ms": exact_ms.get(mode),
                }
            )
        if args.contention and name != "qdrant-client local":
            for mode in [m for m in ("hybrid", "hybrid+colbert") if m in modes]:
                if "set_ef" in engine:
                    engine["set_ef"](args.ef)
                print(
                    f"[{label}] {name}, 1 busy core: {mode} ({len(qs)} queries)", file=sys.stderr, flush=True
                )
                with busy_core():
                    found, lat = timed(engine["run"](mode), qs)
                rows.append(
                    {
                        "set": label,
                        "engine": f"{name}, 1 busy core",
                        "mode": mode,
                        "queries": len(qs),
                        "p50_ms": pct(lat, 50),
                        "p95_ms": pct(lat, 95),
                        "recall@100": recall(found, truth[mode][: len(qs)]),
                        "build_s": engine["build_s"],
                        "bytes_per_doc": engine["bytes"],
                    }
                )
        if "set_checks" in engine:  # the checksum checks' cost per query: interleaved rounds, on and off
            mode = "hybrid+colbert" if colbert else "hybrid"
            engine["set_ef"](args.ef)
            latencies: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(4):
                for on in (True, False) if round_ % 2 == 0 else (False, True):
                    engine["set_checks"](on)
                    latencies[on] += timed(engine["run"](mode), qs)[1]
            engine["set_checks"](True)
            rows.append(
                {
                    "set": label,
                    "integrity": True,
                    "mode": mode,
                    "open_ms": engine["open_ms"],
                    "open_unchecked_ms": engine["open_unchecked_ms"],
                    "checked_s": engine["checked_s"],
                    "verify_s": engine["verify_s"],
                    "checks_on_p50_ms": pct(latencies[True], 50),
                    "checks_off_p50_ms": pct(latencies[False], 50),
                    "queries": len(latencies[True]),
                }
            )
        engine["close"]()
    return rows


def dense_code_rows(
    args: argparse.Namespace,
    label: str,
    dense: np.ndarray,
    queries: np.ndarray,
    embedder: Embedder,
    root: Path,
) -> list[dict[str, Any]]:
    """The flat dense first stage over float32 and over each of `args.dense_codes` (one index each, dense
    only): latency per query at k = 10 and 100, recall against exact search, bytes per document scanned."""
    n = dense.shape[0]
    ids = [f"d{i}" for i in range(n)]
    row_of = {doc_id: i for i, doc_id in enumerate(ids)}
    picked = list(range(queries.shape[0]))
    truth = {k: [top_k(dense @ queries[q], k) for q in picked] for k in (10, 100)}
    rows: list[dict[str, Any]] = []
    for kind in ("none", *args.dense_codes):
        print(f"[{label}] dense codes: {kind} …", file=sys.stderr, flush=True)
        options: dict[str, Any] = {"dense_index": "flat", "sparse": False, "colbert": False}
        if kind != "none":
            options["dense_quantization"] = kind
        path = root / f"codes-{label.replace(' ', '_')}-{kind}"
        index = Index.create(path, embedder, **options)
        started = time.perf_counter()
        index.add_encoded_batches(
            (
                [Document(id=ids[i], text="") for i in range(start, min(n, start + 10_000))],
                EncodeResult(dense=dense[start : start + 10_000]),
            )
            for start in range(0, n, 10_000)
        )
        build = time.perf_counter() - started
        index.close()
        index = Index.open(path, embedder)
        index.wait_checked()  # every block checked and the files prefaulted: steady-state queries
        sizes = index.info()["bytes"]
        defaults = [None] if kind == "none" else [None, *args.dense_oversampling]
        for over in dict.fromkeys(defaults):
            if over is not None:
                index.settings.dense_oversampling = over
            row: dict[str, Any] = {
                "set": label,
                "storage": "float32" if kind == "none" else kind,
                "oversampling": None if kind == "none" else index.settings.oversampling,
                "queries": len(picked),
                "build_s": build,
                "first_stage_bytes_per_doc": (sizes["dense_codes"] if kind != "none" else sizes["dense"]) / n,
                "dense_bytes_per_doc": sizes["dense"] / n,
            }
            for k in (10, 100):

                def search(q: int, k: int = k, index: Any = index) -> np.ndarray:
                    hits = index.search_vectors(
                        EncodeResult(dense=queries[q : q + 1]), top_k=k, mode="dense"
                    )[0]
                    return np.array([row_of[h.doc_id] for h in hits], dtype=np.int64)

                found, lat = timed(search, picked)
                row[f"p50_ms@{k}"], row[f"p95_ms@{k}"] = pct(lat, 50), pct(lat, 95)
                row[f"recall@{k}"] = recall(found, truth[k])
            rows.append(row)
        index.close()
    return rows


def dense_code_sets(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """The dense-codes section on the 384-d synthetic set, in its own basis and in a random one."""
    n, dim = args.docs, 384
    label = f"scale {n // 1000}k×{dim}"
    print(f"[{label}] generating vectors for the dense codes …", file=sys.stderr, flush=True)
    data = synthetic(n, dim, args.queries, None, 32, seed=dim)
    embedder = vector_model(dim, root)
    rows = dense_code_rows(args, label, data["dense"], data["q_dense"], embedder, root)
    basis, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))
    rotate = basis.astype(np.float32)
    rows += dense_code_rows(
        args, f"{label}, random basis", data["dense"] @ rotate, data["q_dense"] @ rotate, embedder, root
    )
    return rows


def colbert_full_width(args: argparse.Namespace) -> dict[str, Any]:
    """Re-rank cost at BGE-M3's own ColBERT width (1024) on a 10k-document subset: bytes and MaxSim time."""
    rng = np.random.default_rng(7)
    n, tokens = (2000 if args.quick else 10_000), 32
    docs = [rng.standard_normal((tokens, 1024)).astype(np.float16) for _ in range(n)]
    query = rng.standard_normal((16, 1024)).astype(np.float32)
    lat = []
    for _ in range(50):
        cands = rng.choice(n, 200, replace=False)
        start = time.perf_counter()
        maxsim_scores(query, [docs[i] for i in cands])
        lat.append((time.perf_counter() - start) * 1000)
    return {
        "docs": n,
        "tokens": tokens,
        "bytes_per_doc_fp16": tokens * 1024 * 2,
        "bytes_per_doc_int8": tokens * (1024 + 4),
        "rerank200_p50_ms": pct(lat, 50),
        "rerank200_p95_ms": pct(lat, 95),
    }


# ----------------------------------------------------------------------------------------------- real corpus
def cranfield(root: Path) -> dict[str, Any]:
    folder = SHARED / "data" / "cranfield"
    corpus = [json.loads(x) for x in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(x) for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    qrels = read_qrels(folder / "qrels.tsv")[0]
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


def token_vectors(
    embedder: Embedder, texts: list[str], max_length: int, prompt_name: str
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Dense vectors (the model's own pooling) and per-token unit vectors (after [CLS], as M3's ColBERT) of
    the texts with the model's prompt `prompt_name` (`query` / `document`) before them."""
    import torch

    model = embedder.model
    texts = embedder.with_prompt(texts, prompt_name)
    dense_out, tokens_out = [], []
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = embedder.tokenizer(
                texts[start : start + 64],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out = model(batch["input_ids"], batch["attention_mask"], dense=True)
            hidden = model.backbone(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            hidden = torch.nn.functional.normalize(hidden[:, 1:], dim=-1)
            assert out.dense is not None
            dense_out.append(out.dense.numpy())
            for row, length in enumerate(batch["attention_mask"].sum(1).tolist()):
                tokens_out.append(hidden[row, : length - 1].numpy().astype(np.float32))
    return np.concatenate(dense_out), tokens_out


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    import pytrec_eval

    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(
        {q: d for q, d in run.items() if q in qrels}
    )
    return sum(v["ndcg_cut_10"] for v in per_query.values()) / len(qrels)


def real_rows(args: argparse.Namespace, root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = cranfield(root)
    corpus, queries, qrels = data["corpus"], data["queries"], data["qrels"]
    embedder = Embedder.from_pretrained("minilm-m3", device="cpu")
    texts = [f"{r.get('title') or ''} {r['text']}".strip() for r in corpus]
    qtexts = [r["text"] for r in queries]
    CACHE.mkdir(parents=True, exist_ok=True)
    cache = CACHE / "cranfield-minilm-256.npz"
    started = time.perf_counter()
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        dense, tokens, qdense, qtokens = z["dense"], list(z["tokens"]), z["qdense"], list(z["qtokens"])
        encode_s = float(z["encode_s"])
    else:
        dense, tokens = token_vectors(embedder, texts, 256, "document")
        encode_s = time.perf_counter() - started
        qdense, qtokens = token_vectors(embedder, qtexts, 256, "query")
        np.savez(
            cache,
            dense=dense,
            tokens=np.array(tokens, dtype=object),
            qdense=qdense,
            qtokens=np.array(qtokens, dtype=object),
            encode_s=encode_s,
        )
    check = embedder.encode(texts[:8], prompt_name="document", max_length=256).dense
    assert check is not None and np.allclose(check, dense[:8], atol=1e-4), (
        "token pass must reproduce Embedder.encode"
    )
    q_lat = []
    for text in qtexts[:30]:
        t = time.perf_counter()
        embedder.encode([text], prompt_name="query")
        q_lat.append((time.perf_counter() - t) * 1000)
    ids = [r["id"] for r in corpus]
    row_of = {doc_id: i for i, doc_id in enumerate(ids)}
    rows: list[dict[str, Any]] = []
    n = len(ids)
    truth = [top_k(dense @ qdense[q], K) for q in range(len(queries))]
    index = Index.create(root / "real-trivec", embedder, max_length=256, sparse=False, colbert=False)
    t = time.perf_counter()
    index.add_encoded(
        [Document(id=r["id"], title=r.get("title"), text=r["text"]) for r in corpus],
        EncodeResult(dense=dense),
    )
    build = time.perf_counter() - t

    def index_search(searched: Index) -> Callable[[int], np.ndarray]:
        def search(q: int) -> np.ndarray:
            hits = searched.search_vectors(EncodeResult(dense=qdense[q : q + 1]), top_k=K, mode="dense")[0]
            return np.array([row_of[h.doc_id] for h in hits])

        return search

    def real_row(engine_name: str, search: Callable[[int], np.ndarray], **extra: Any) -> dict[str, Any]:
        """Run every query through `search`; the row with latency, recall against exact and nDCG@10."""
        found, lat = timed(search, list(range(len(queries))))
        run = {
            queries[q]["id"]: {ids[i]: float(len(f) - r) for r, i in enumerate(f.tolist())}
            for q, f in enumerate(found)
        }
        return {
            "set": f"cranfield {n} docs, MiniLM dense",
            "engine": engine_name,
            "mode": "dense",
            "queries": len(queries),
            "p50_ms": pct(lat, 50),
            "p95_ms": pct(lat, 95),
            "recall@100": recall(found, truth),
            **extra,
            "ndcg@10": ndcg10(qrels, run),
        }

    args.real_dense = (dense, qdense)  # for the dense-codes section
    row = real_row("trivec embedded", index_search(index), build_s=build, encode_s=encode_s)
    row["bytes_per_doc"] = {k: v / n for k, v in index.info()["bytes"].items()}
    row["query_encode_p50_ms"] = pct(q_lat, 50)
    rows.append(row)
    index.close()
    edge_data = {
        "dense": dense,
        "sparse": [SparseVector.empty()] * n,
        "q_dense": qdense,
        "q_sparse": [SparseVector.empty()] * len(queries),
    }
    engine = edge_engine(edge_data, root / "real-edge", False, args.ef)
    if engine is not None:
        rows.append(
            real_row(
                "qdrant-edge",
                engine["run"]("dense"),
                build_s=engine["build_s"],
                bytes_per_doc=engine["bytes"],
            )
        )
        engine["close"]()
    local = Index.create(
        root / "real-local", embedder, backend="qdrant", url=":memory:", sparse=False, colbert=False
    )
    t = time.perf_counter()
    local.add_encoded([Document(id=r["id"], text=r["text"]) for r in corpus], EncodeResult(dense=dense))
    build = time.perf_counter() - t
    rows.append(real_row("qdrant-client local", index_search(local), build_s=build, bytes_per_doc={}))
    local.close()

    quality: list[dict[str, Any]] = []
    reference: list[np.ndarray] = []
    for name, dtype, dim in [
        ("float32", "float32", None),
        ("float16", "float16", None),
        ("int8", "int8", None),
        ("float16, 192 dims", "float16", 192),
        ("float16, 96 dims", "float16", 96),
        ("int8, 96 dims", "int8", 96),
        ("float16, 48 dims", "float16", 48),
    ]:
        projection = fit_projection(tokens[:2000], dim) if dim else None
        codec = ColbertCodec(dtype, projection)
        stored = [codec.decode(*codec.encode(m)) for m in tokens]
        run, tops = {}, []
        for q in range(len(queries)):
            cands = truth[q]
            scores = maxsim_scores(codec.project(qtokens[q]), [stored[i] for i in cands])
            order = cands[top_k(scores, 10)]
            tops.append(order)
            run[queries[q]["id"]] = {ids[i]: float(10 - r) for r, i in enumerate(order.tolist())}
        if not reference:
            reference = tops
        width = dim or tokens[0].shape[1]
        per_token = width * (1 if dtype == "int8" else 2 if dtype == "float16" else 4) + (
            4 if dtype == "int8" else 0
        )
        quality.append(
            {
                "storage": name,
                "bytes_per_token": per_token,
                "ndcg@10": ndcg10(qrels, run),
                "top10_agreement_vs_fp32": recall(tops, reference),
            }
        )
    dense_run = {
        queries[q]["id"]: {ids[i]: float(10 - r) for r, i in enumerate(truth[q][:10].tolist())}
        for q in range(len(queries))
    }
    quality.append(
        {
            "storage": "(dense only, no re-rank)",
            "bytes_per_token": None,
            "ndcg@10": ndcg10(qrels, dense_run),
            "top10_agreement_vs_fp32": None,
        }
    )
    return rows, quality


# ----------------------------------------------------------------------------------------------- report
def fmt_bytes(b: dict[str, float]) -> str:
    if not b:
        return "in memory"
    keys = [k for k in ("dense", "dense_ann", "sparse", "colbert", "documents") if b.get(k)]
    if not keys:
        return f"{b.get('total', 0):,.0f} total"
    return ", ".join(f"{k} {b[k]:,.0f}" for k in keys) + f" (total {b.get('total', 0):,.0f})"


def dense_codes_report(codes: list[dict[str, Any]]) -> list[str]:
    if not codes:
        return []
    out = [
        "## Dense first stage: float32, int8 and binary codes (flat; codes re-scored exactly from float32)",
        "",
        "| set | storage | oversampling | queries | p50 ms k=10 | p95 ms k=10 | recall@10 | p50 ms k=100 | "
        "p95 ms k=100 | recall@100 | first stage bytes/doc | float32 bytes/doc | build s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in codes:
        over = "" if r["oversampling"] is None else f"{r['oversampling']:g}"
        out.append(
            f"| {r['set']} | {r['storage']} | {over} | {r['queries']} | {r['p50_ms@10']:.2f} | "
            f"{r['p95_ms@10']:.2f} | {r['recall@10']:.4f} | {r['p50_ms@100']:.2f} | {r['p95_ms@100']:.2f} | "
            f"{r['recall@100']:.4f} | {r['first_stage_bytes_per_doc']:,.1f} | {r['dense_bytes_per_doc']:,.0f} | "
            f"{r['build_s']:.1f} |"
        )
    out += [
        "",
        "Recall against exact float32 search (k = 10 / 100, the same search at each k); the first stage scans "
        "the bytes shown for every query and re-scores ⌈k × oversampling⌉ float32 rows per segment.",
        "",
    ]
    return out


def report(
    rows: list[dict[str, Any]],
    colbert_full: dict[str, Any],
    quality: list[dict[str, Any]],
    args: argparse.Namespace,
    codes: list[dict[str, Any]] | None = None,
) -> str:
    lines = [
        "| set | engine | mode | queries | p50 ms | p95 ms | recall@100 | build s | bytes/doc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    integrity = [r for r in rows if r.get("integrity")]
    rows = [r for r in rows if not r.get("integrity")]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['engine']} | {r['mode']} | {r['queries']} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['recall@100']:.4f} | {r['build_s']:.1f} | {fmt_bytes(r['bytes_per_doc'])} |"
        )
    notes = []
    for r in rows:
        if r.get("exact_p50_ms") is not None and r["engine"] == "trivec embedded":
            notes.append(
                f"- {r['set']}, {r['mode']}: brute-force reference p50 {r['exact_p50_ms']:.2f} ms (numpy / scipy)"
            )
        if r.get("ndcg@10") is not None:
            notes.append(f"- {r['set']}, {r['engine']}: nDCG@10 {r['ndcg@10']:.4f}")
        if r.get("encode_s") is not None:
            notes.append(
                f"- {r['set']}: encoding the corpus took {r['encode_s']:.1f} s; one query {r['query_encode_p50_ms']:.1f} ms (p50)"
            )
        if r.get("open_ms") is not None and r["mode"] == "dense":
            notes.append(f"- {r['set']}: trivec index opens in {r['open_ms']:.1f} ms")
    for r in integrity:
        notes.append(
            f"- {r['set']}: checksums — the index opens in {r['open_ms']:.1f} ms (median of 10; manifest, "
            f"checksum table, small files and offsets checked; {r['open_unchecked_ms']:.1f} ms without hashing "
            f"the small files), every block is checked {r['checked_s']:.2f} s after opening (in the background), "
            f"`verify` takes {r['verify_s']:.2f} s; {r['mode']} p50 {r['checks_on_p50_ms']:.3f} ms with the "
            f"checks, {r['checks_off_p50_ms']:.3f} ms without ({r['queries']} queries each, interleaved)"
        )
    quiet_p50 = {
        (r["set"], r["engine"], r["mode"]): r["p50_ms"]
        for r in rows
        if not r["engine"].endswith(", 1 busy core")
    }
    for r in rows:
        if r["engine"].endswith(", 1 busy core"):
            quiet = quiet_p50.get((r["set"], r["engine"].removesuffix(", 1 busy core"), r["mode"]))
            if quiet:
                notes.append(
                    f"- {r['set']}, {r['engine'].removesuffix(', 1 busy core')}, {r['mode']}: "
                    f"{r['p50_ms'] / quiet:.2f}× its quiet p50 with one busy core"
                )
    out = ["## Search latency, recall and size", "", *lines, "", *dict.fromkeys(notes), ""]
    out += dense_codes_report(codes or [])
    out += [
        "## ColBERT at BGE-M3 width (1024 dims, 32 tokens/doc)",
        "",
        f"{colbert_full['docs']} docs: {colbert_full['bytes_per_doc_fp16']:,} bytes/doc fp16, "
        f"{colbert_full['bytes_per_doc_int8']:,} int8; MaxSim re-rank of 200 candidates (16 query tokens): "
        f"p50 {colbert_full['rerank200_p50_ms']:.2f} ms, p95 {colbert_full['rerank200_p95_ms']:.2f} ms",
        "",
        "## ColBERT storage options: quality (Cranfield, MiniLM token vectors re-ranking the dense top 100)",
        "",
        "| storage | bytes/token | nDCG@10 | top-10 agreement with fp32 |",
        "|---|---|---|---|",
    ]
    for q in quality:
        agreement = "" if q["top10_agreement_vs_fp32"] is None else f"{q['top10_agreement_vs_fp32']:.4f}"
        size = "" if q["bytes_per_token"] is None else str(q["bytes_per_token"])
        out.append(f"| {q['storage']} | {size} | {q['ndcg@10']:.4f} | {agreement} |")
    import platform

    import faiss

    try:
        from importlib.metadata import version

        edge_version = version("qdrant-edge-py")
    except Exception:
        edge_version = "not installed"
    from importlib.metadata import version as v

    out += [
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, numpy {np.__version__}, "
        f"faiss {faiss.__version__}, qdrant-client {v('qdrant-client')}, qdrant-edge-py {edge_version}; "
        f"HNSW M={HNSW.hnsw_m}, ef_construction={HNSW.hnsw_ef_construction}, ef_search={args.ef} for both trivec and qdrant-edge; "
        f"{'--quick' if args.quick else 'full'} run.",
    ]
    return "\n".join(out)


def cpu_model() -> str:
    """The CPU's name and its widest vector units: timings here move by 2× between such machines."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        import platform

        return platform.processor() or "unknown CPU"
    fields = {
        key.strip(): value for key, value in (line.split(":", 1) for line in info.splitlines() if ":" in line)
    }
    name = " ".join(fields.get("model name", "unknown CPU").split())
    flags = set(fields.get("flags", "").split())
    units = [
        u for u, flag in (("AVX-512", "avx512f"), ("AMX", "amx_tile"), ("AVX2", "avx2")) if flag in flags
    ]
    return f"{name}, {' + '.join(units[:2]) if units else 'no AVX'}"


def ef_list(text: str) -> list[int]:
    """`--trivec-extra-ef`: comma-separated positive integers ('' for none)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"ef_search values must be ≥ 1, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20k documents, 100 queries")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument(
        "--qdrant-local-queries", type=int, default=3, help="0 skips qdrant-client local mode at scale"
    )
    parser.add_argument(
        "--ef", type=int, default=HNSW.hnsw_ef_search, help="HNSW ef_search (trivec and qdrant-edge)"
    )
    parser.add_argument(
        "--trivec-extra-ef",
        type=ef_list,
        default=[400],
        help="more HNSW ef_search values for trivec's hybrid rows (comma-separated; '' for none)",
    )
    parser.add_argument(
        "--dims",
        default="384,1024",
        help="dense widths of the synthetic sets; 'none' runs only the real corpus",
    )
    parser.add_argument(
        "--no-contention",
        dest="contention",
        action="store_false",
        help="skip the rows measured beside one other CPU-bound process",
    )
    parser.add_argument(
        "--dense-codes",
        type=lambda text: [x.strip() for x in text.split(",") if x.strip()],
        default=["int8", "binary"],
        help="dense_quantization kinds of the dense-codes section (comma-separated; '' skips the section)",
    )
    parser.add_argument(
        "--dense-oversampling",
        type=lambda text: [float(x) for x in text.split(",") if x.strip()],
        default=[],
        help="more oversampling values for the dense-codes rows (comma-separated), beside each kind's default",
    )
    parser.add_argument(
        "--dense-codes-only",
        action="store_true",
        help="run only the dense-codes section (synthetic 384-d sets and Cranfield's MiniLM vectors)",
    )
    parser.add_argument("--out", type=Path, default=CACHE)
    args = parser.parse_args()
    args.docs = args.docs or (20_000 if args.quick else 100_000)
    args.queries = args.queries or (100 if args.quick else 200)
    started = time.perf_counter()
    if args.dense_codes_only:  # makes its own temporary directory
        dense_codes_main(args, started)
        return
    root = Path(tempfile.mkdtemp(prefix="trivec-search-bench-"))
    codes: list[dict[str, Any]] = []
    try:
        rows: list[dict[str, Any]] = []
        if args.dense_codes and "384" in args.dims.split(","):
            codes += dense_code_sets(args, root)
        for dim in [int(x) for x in args.dims.split(",") if x.strip() not in ("", "none")]:
            rows += scale_rows(args, dim, colbert=dim == 384, root=root)
            args.out.mkdir(parents=True, exist_ok=True)  # keep what is measured if a later part fails
            (args.out / "partial.json").write_text(
                json.dumps(rows, indent=1, default=float), encoding="utf-8"
            )
        full = colbert_full_width(args)
        real, quality = real_rows(args, root)
        rows += real
        if args.dense_codes:
            codes += cranfield_dense_codes(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = (
        report(rows, full, quality, args, codes)
        + f"\n\nTotal benchmark time {time.perf_counter() - started:.0f} s.\n"
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    (args.out / "results.json").write_text(
        json.dumps(
            {"rows": rows, "colbert_full_width": full, "colbert_quality": quality, "dense_codes": codes},
            indent=1,
            default=float,
        ),
        encoding="utf-8",
    )


def cranfield_dense_codes(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """The dense-codes section on Cranfield's real MiniLM vectors (encoded by `real_rows`, or cached)."""
    dense, qdense = getattr(args, "real_dense", (None, None))
    if dense is None:
        cache = CACHE / "cranfield-minilm-256.npz"
        if not cache.is_file():
            print("[cranfield] no cached MiniLM vectors: run the full benchmark once", file=sys.stderr)
            return []
        z = np.load(cache, allow_pickle=True)
        dense, qdense = z["dense"], z["qdense"]
    embedder = Embedder.from_pretrained("minilm-m3", device="cpu")
    label = f"cranfield {dense.shape[0]} docs, MiniLM"
    vectors, queries = np.asarray(dense, np.float32), np.asarray(qdense, np.float32)
    return dense_code_rows(args, label, vectors, queries, embedder, root)


def dense_codes_main(args: argparse.Namespace, started: float) -> None:
    """`--dense-codes-only`: the dense-codes section alone, printed and saved as dense-codes.md / .json."""
    import platform

    root = Path(tempfile.mkdtemp(prefix="trivec-search-bench-"))
    try:
        codes = dense_code_sets(args, root) + cranfield_dense_codes(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(
        [
            *dense_codes_report(codes),
            f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, numpy "
            f"{np.__version__}; {args.docs:,} synthetic documents, {args.queries} queries; total "
            f"{time.perf_counter() - started:.0f} s.",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dense-codes.md").write_text(text + "\n", encoding="utf-8")
    (args.out / "dense-codes.json").write_text(json.dumps(codes, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
