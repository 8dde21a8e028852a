"""How the embedded index scales (issue #19): synthetic corpora of 10k … 1M documents (the real corpora of
the shared data at their own size, built with the real model: benchmarks/scale_corpora.py).

    python benchmarks/scale.py --docs 10000 100000 300000     # one size per child process, in order

Documents have the shapes of the default model's (m3-small): 384-d unit dense vectors in clusters, Zipf
sparse vectors (≈ 60 terms), and ColBERT token matrices of 384 dims whose lengths follow Cranfield's after
pooling (log-normal, median ≈ 105 tokens, at most 256). Token vectors are rows of a fixed pool of 65,536
random unit vectors (so `exact` can score any document from its token ids); the index stores them with
the default codes (pool factor 1 here: the lengths are already pooled ones; pooling costs ≈ 1–3 ms per
document at build time on top, measured in docs/scale.md). Queries: 32 ColBERT tokens (half from the
source document), a noisy copy of its dense vector, 12 sparse terms.

Each size is built in its own process (`build` step) that generates batches of 10,000 documents on the
fly (compact: dense, sparse, token ids) and streams them into `Index.add_encoded_batches` 256 documents
(`ENCODE_BATCH`) at a time, as `index build` does, so its peak RSS (VmHWM) is the index's plus the model
record's, not a whole batch's float32 token vectors; the time spent generating is taken out of `build_s`;
the parent samples its anonymous and file-backed RSS. The parent then computes the exact results (exact
dense and sparse top 100, fused with the same weights; ColBERT scores from the decoded stored codes), frees
the corpus arrays, and measures: bytes per document per representation, open time, the share of the big
files in the page cache, hybrid and hybrid+ColBERT p50 / p95 and recall@100 (at each `--ef`).

    python benchmarks/scale.py --docs 1000000 --keep          # keep the index and its build row …
    python benchmarks/scale.py --docs 1000000 --reuse --ef 320,1000   # … and search it again

ColBERT storage other than the default (`--colbert-dtype`, `--colbert-dim`: the index settings of the same
names; the token counts stay the pooled ones) and segments of at most `--segment-rows` rows (the index
setting `max_segment_rows`: each segment gets its own graph, and every search reads all of them):

    python benchmarks/scale.py --docs 100000 1000000 --colbert-dtype binary --segment-rows 250000

The token counts are those of pool factor 3 (the default); `--tokens-pool-factor P` scales them to pool
factor P's (× 3 / P: median ≈ 157, mean ≈ 172 tokens at P = 2; the index itself still pools nothing).

Residual codes (`--colbert-dtype residual1|residual2`) are fitted once the rows an index stages as float16
make 65,536 stored tokens, as in an index build; every later document's tokens are then coded from the
65,536-row pool coded once
(`colbert_codes`, as an encoder given the index's coder hands them over): coding each document's tokens
again (a nearest-centroid search per token) would repeat the same 65,536 results ≈ 2,000 times. What
that coding costs is measured on the pool and reported per document instead (`colbert_code_ms_per_doc`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from trivec import EncodeResult  # noqa: E402
from trivec.inference.scoring import hybrid_scores, maxsim_scores  # noqa: E402
from trivec.inference.sparse import SparseVector  # noqa: E402
from trivec.retrieval import Document, Index, IndexSettings  # noqa: E402
from trivec.retrieval.base import ENCODE_BATCH  # noqa: E402
from trivec.retrieval.fusion import top_k  # noqa: E402

DIM, BATCH, POOL, K, SEED = 384, 10_000, 65_536, 100, 19
TOKENS = {"pool_factor": 3}  # the pool factor whose token counts documents have (`--tokens-pool-factor`)
VOCAB = 250_002
HYBRID = {"dense": 0.4, "sparse": 0.2, "colbert": 0.0}
ALL = {"dense": 0.25, "sparse": 0.25, "colbert": 0.5}  # the weights of every row so far (shapes, not a model)


def token_pool() -> np.ndarray:
    rows = np.random.default_rng(SEED).standard_normal((POOL, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def centers(n: int) -> np.ndarray:
    spectrum = (1.0 / np.sqrt(np.arange(1, DIM + 1))).astype(np.float32)
    return np.random.default_rng(SEED).standard_normal((max(64, n // 100), DIM)).astype(np.float32) * spectrum


def batch(n: int, b: int, middle: np.ndarray, cdf: np.ndarray) -> dict[str, Any]:
    """Documents b·BATCH … of an n-document corpus, the same in every process."""
    rng = np.random.default_rng([SEED, b])
    count = min(BATCH, n - b * BATCH)
    spectrum = (1.0 / np.sqrt(np.arange(1, DIM + 1))).astype(np.float32)
    dense = middle[rng.integers(0, middle.shape[0], count)]
    dense = dense + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32) * spectrum
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    sparse = []
    for _ in range(count):
        ids = np.unique(np.searchsorted(cdf, rng.random(70)) + 4)[:60]
        sparse.append(
            SparseVector(ids.astype(np.int32), rng.lognormal(-2.0, 0.6, ids.shape[0]).astype(np.float32))
        )
    scale = 3 / TOKENS["pool_factor"]  # Cranfield's pool-3 lengths, scaled to another pool factor's
    lengths = np.clip(rng.lognormal(np.log(105 * scale), 0.45, count), 8 * scale, 256 * scale).astype(
        np.int64
    )
    tokens = rng.integers(0, POOL, int(lengths.sum())).astype(np.int32)
    return {"dense": dense, "sparse": sparse, "lengths": lengths, "tokens": tokens}


def pool_codes(codec: Any, pool: np.ndarray) -> dict[str, Any]:
    """The index's codes of every pool row (coded once, timed: the coding a build does per document)."""
    started = time.perf_counter()
    codes, _ = codec.encode(pool)
    return {"codes": codes, "seconds": time.perf_counter() - started}


def zipf_cdf() -> np.ndarray:
    p = np.arange(1, VOCAB - 3, dtype=np.float64) ** -1.0
    return np.cumsum(p / p.sum())


def build(n: int, path: Path, storage: dict[str, Any]) -> dict[str, Any]:
    """Child process: stream n synthetic documents into a new index (`storage`: index settings); build time
    and peak RSS."""
    embedder = vector_model(path.parent)
    pool, middle, cdf = token_pool(), centers(n), zipf_cdf()

    generating = [0.0]  # seconds spent making the synthetic vectors: not the index's, taken out of build_s
    written = [0.0]  # when the last batch was handed over (the rest: postings, ANN graph, checksums)
    counted = [0]  # token vectors handed over
    coded: dict[str, Any] = {}  # residual codes: the pool coded once, after the staged rows fitted them
    residual = storage["colbert_dtype"].startswith("residual")

    def batches() -> Any:
        for b in range(-(-n // BATCH)):
            started = time.perf_counter()
            data = batch(n, b, middle, cdf)
            ends = np.cumsum(data["lengths"])
            counted[0] += int(ends[-1])
            generating[0] += time.perf_counter() - started
            # handed over ENCODE_BATCH documents at a time, as `index build` does: the float32 token vectors
            # of a whole 10,000-document batch (≈ 1.8 GB) would be the generator's peak, not the index's
            for lo in range(0, data["lengths"].shape[0], ENCODE_BATCH):
                started = time.perf_counter()
                hi = min(lo + ENCODE_BATCH, data["lengths"].shape[0])
                picks = [data["tokens"][ends[i] - data["lengths"][i] : ends[i]] for i in range(lo, hi)]
                docs = [Document(id=f"d{b * BATCH + i}", text="") for i in range(lo, hi)]
                encoded = EncodeResult(dense=data["dense"][lo:hi], sparse=data["sparse"][lo:hi])
                # the codebook is fitted once the staged rows make its sample: the pool's codes from then on
                if residual and not index.codec.needs_fit(storage.get("colbert_dim")):
                    if not coded:
                        coded.update(pool_codes(index.codec, pool))
                    encoded.colbert_codes = [(coded["codes"][p], None) for p in picks]
                else:
                    encoded.colbert = [pool[p] for p in picks]
                generating[0] += time.perf_counter() - started
                yield docs, encoded
        written[0] = time.perf_counter()

    before = peak_rss_mib()  # the model record, libraries and token pool, before any document
    started = time.perf_counter()
    index = Index.create(path, embedder, colbert_pool_factor=1, max_segments=64, **storage)
    index.add_encoded_batches(batches())
    index.close()
    ended = time.perf_counter()
    tokens_total = counted[0]
    code_ms = 1000 * coded["seconds"] * tokens_total / POOL / n if coded else None
    return {
        "docs": n,
        "tokens_pool_factor": TOKENS["pool_factor"],
        "tokens_per_doc": tokens_total / n,
        "colbert_code_ms_per_doc": code_ms,  # residual codes: coding, measured on the pool, not in build_s
        "build_s": ended - started - generating[0],
        "finish_s": ended - written[0],  # of build_s: the segment's postings, ANN graph, checksums
        "generate_s": generating[0],
        "build_peak_rss_mib": peak_rss_mib(),
        "rss_before_docs_mib": before,
    }


def vector_model(root: Path) -> Any:
    """A model record with m3-small's shapes (XLM-R tokenizer, 384-d dense, sparse head, 384-d ColBERT head).
    Random weights, never run: the documents come as pre-computed vectors (`Index.add_encoded_batches`)."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    from trivec import Embedder
    from trivec.models import M3Model
    from trivec.models.heads import ColbertHead, SparseHead

    shared = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
    tokenizer = AutoTokenizer.from_pretrained(shared / "fixtures" / "xlmr-tokenizer")
    config = XLMRobertaConfig(
        vocab_size=1000, hidden_size=DIM, num_hidden_layers=1, num_attention_heads=8, intermediate_size=64
    )
    torch.manual_seed(0)
    model = M3Model(XLMRobertaModel(config), tokenizer, "cls", True, SparseHead(DIM), ColbertHead(DIM, DIM))
    model.save_pretrained(root / "model")
    return Embedder.from_pretrained(root / "model", device="cpu")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_queries(
    rng: np.random.Generator,
    count: int,
    dense: np.ndarray,
    sparse: list[SparseVector],
    tokens: np.ndarray,
    lengths: np.ndarray,
    ends: np.ndarray,
    pool: np.ndarray,
    cdf: np.ndarray,
) -> tuple[np.ndarray, list[SparseVector], list[np.ndarray]]:
    """`count` queries, each from a document: a noisy copy of its dense vector, 6 of its sparse terms and 6
    Zipf ones, 16 of its ColBERT tokens and 16 random ones."""
    source = rng.choice(dense.shape[0], count, replace=False)
    spectrum = (1.0 / np.sqrt(np.arange(1, DIM + 1))).astype(np.float32)
    q_dense = dense[source] + 0.8 * rng.standard_normal((count, DIM)).astype(np.float32) * spectrum
    q_dense /= np.linalg.norm(q_dense, axis=1, keepdims=True)
    q_sparse, q_colbert = [], []
    for s in source:
        own = sparse[s].indices
        ids = np.unique(
            np.concatenate(
                [rng.choice(own, min(len(own), 6), replace=False), np.searchsorted(cdf, rng.random(6)) + 4]
            )
        )
        q_sparse.append(
            SparseVector(ids.astype(np.int32), rng.lognormal(-1.5, 0.5, ids.shape[0]).astype(np.float32))
        )
        doc = tokens[ends[s] - lengths[s] : ends[s]]
        q_colbert.append(np.concatenate([pool[rng.choice(doc, 16)], pool[rng.integers(0, POOL, 16)]]))
    return q_dense, q_sparse, q_colbert


def measure(n: int, path: Path, queries: int, efs: list[int], warmup: int = 0) -> dict[str, Any]:
    """Parent: open time, bytes per document, hybrid and hybrid+ColBERT latency and recall@100 vs exact.

    The exact results are computed first and the corpus arrays freed before the index is opened and searched
    (at 1M they are ≈ 5 GB: held during the searches, they would take page cache from the index's files, as
    no serving process would). `efs`: HNSW ef_search values searched (the first is the row's main figure).
    `warmup`: that many other queries (hybrid+ColBERT) are searched first, after one timed "cold" pass right
    after open: an index too large to prefault pays, the first time a search reads a block, a page fault and
    the block's checksum (and a disk read where the page is not cached), which a serving process has long
    paid for the blocks its queries keep reading."""
    import gc

    pool, middle, cdf = token_pool(), centers(n), zipf_cdf()
    parts = [batch(n, b, middle, cdf) for b in range(-(-n // BATCH))]
    dense = np.concatenate([p["dense"] for p in parts])
    sparse = [v for p in parts for v in p["sparse"]]
    lengths = np.concatenate([p["lengths"] for p in parts])
    tokens = np.concatenate([p["tokens"] for p in parts])
    ends = np.cumsum(lengths)
    del parts
    shape = (dense, sparse, tokens, lengths, ends, pool, cdf)
    q_dense, q_sparse, q_colbert = make_queries(np.random.default_rng([SEED, 999]), queries, *shape)
    # warm-up queries: made the same way, from other documents (a later rng), never timed or scored
    w_dense, w_sparse, w_colbert = make_queries(np.random.default_rng([SEED, 998]), warmup, *shape)
    del shape
    inverted = csr_of(sparse, VOCAB).T.tocsr()  # term-major: a query's product reads its terms' rows only
    del sparse
    index = Index.open(path)
    codec = index.codec  # type: ignore[attr-defined]
    index.close()
    del index
    stored_pool = codec.decode(*codec.encode(pool), codec.stored_dim(DIM))  # what the index scores
    modes = (("hybrid", HYBRID), ("hybrid+colbert", ALL))
    truths: dict[str, list[set[int]]] = {mode: [] for mode, _ in modes}
    for q in range(queries):
        d = dense @ q_dense[q]
        s = np.asarray((csr_of([q_sparse[q]], VOCAB) @ inverted).todense()).ravel()
        cands = exact_candidates(d, s)
        for mode, weights in modes:
            scores = {"dense": d[cands], "sparse": s[cands]}
            if mode != "hybrid":
                docs = [stored_pool[tokens[ends[c] - lengths[c] : ends[c]]] for c in cands]
                scores["colbert"] = maxsim_scores(codec.project(q_colbert[q]), docs)
            fused = np.asarray(hybrid_scores(scores, weights), dtype=np.float64)
            truths[mode].append(set(cands[top_k(fused, K)].tolist()))
    del dense, inverted, tokens, lengths, ends, stored_pool, pool
    gc.collect()

    opened = []
    for _ in range(5):
        started = time.perf_counter()
        index = Index.open(path)
        opened.append(1000 * (time.perf_counter() - started))
        index.wait_checked()
        index.close()
    index = Index.open(path)
    index.wait_checked()
    out: dict[str, Any] = {"open_ms_median": float(np.median(opened))}
    info = index.info()
    out["bytes_per_doc"] = {k: round(v / n, 1) for k, v in info["bytes"].items()}
    out["segments"] = len(info["segments"])
    out["page_cache_before_search"] = cached_fraction(path)

    def timed(mode: str, weights: dict[str, float]) -> dict[str, float]:
        latencies, recalls = [], []
        for q in range(queries):
            encoded = EncodeResult(
                dense=q_dense[q : q + 1],
                sparse=[q_sparse[q]],
                colbert=[q_colbert[q]] if mode != "hybrid" else None,
            )
            started = time.perf_counter()
            hits = index.search_vectors(encoded, top_k=K, mode="hybrid", weights=weights)[0]
            latencies.append(1000 * (time.perf_counter() - started))
            found = {int(h.doc_id[1:]) for h in hits}
            recalls.append(len(found & truths[mode][q]) / len(truths[mode][q]))
        return {
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2),
            "recall@100": round(float(np.mean(recalls)), 4),
        }

    index.settings.hnsw_ef_search = efs[0]  # type: ignore[attr-defined]  # read at each search
    if warmup:
        out["cold"] = {"ef_search": efs[0], "mode": "hybrid+colbert", **timed("hybrid+colbert", ALL)}
        started = time.perf_counter()
        for q in range(warmup):
            encoded = EncodeResult(dense=w_dense[q : q + 1], sparse=[w_sparse[q]], colbert=[w_colbert[q]])
            index.search_vectors(encoded, top_k=K, mode="hybrid", weights=ALL)
        out["warmup"] = {"queries": warmup, "seconds": round(time.perf_counter() - started, 1)}
        out["page_cache_after_warmup"] = cached_fraction(path)
    out["search"] = []
    for ef in efs:
        index.settings.hnsw_ef_search = ef  # type: ignore[attr-defined]
        for mode, weights in modes:
            result = timed(mode, weights)
            out["search"].append({"ef_search": ef, "mode": mode, **result})
            if ef == efs[0]:
                out[mode] = result
    out["page_cache_after_search"] = cached_fraction(path)
    index.close()
    return out


def exact_candidates(dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    """The search's candidate rule over every document's scores: the dense top K ∪ the sparse top K with a
    positive score, in that order."""
    dense_top, sparse_top = top_k(dense, K), top_k(sparse, K)
    return np.array(list(dict.fromkeys([*dense_top.tolist(), *sparse_top[sparse[sparse_top] > 0].tolist()])))


def cached_fraction(path: Path) -> dict[str, float]:
    """The share of each large segment file in the page cache (`fincore`), where fincore is installed."""
    out: dict[str, float] = {}
    for file in sorted(path.glob("segments/*/*")):
        if file.stat().st_size < 64 << 20 or shutil.which("fincore") is None:
            continue
        done = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(file)],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip():
            out[file.name] = round(int(done.stdout.split()[0]) / file.stat().st_size, 3)
    return out


def csr_of(vectors: list[SparseVector], width: int) -> Any:
    from scipy import sparse as sp

    lengths = np.array([len(v) for v in vectors])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.int32)
    values = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    return sp.csr_matrix((values, indices, indptr), shape=(len(vectors), width))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--root", type=Path, default=Path("/tmp/trivec-scale"))
    parser.add_argument("--results", type=Path, default=Path("/tmp/trivec-scale/results.jsonl"))
    parser.add_argument(
        "--ef",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        default=[IndexSettings().hnsw_ef_search],
        help="HNSW ef_search values to search with (comma-separated; the first is the row's main figure)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="after one timed cold pass, search this many other queries before the timed passes",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each index (and its build row) for a later --reuse"
    )
    parser.add_argument("--reuse", action="store_true", help="measure an index kept by --keep, unbuilt")
    parser.add_argument(
        "--colbert-dtype", default=IndexSettings().colbert_dtype, help="ColBERT codes (index setting)"
    )
    parser.add_argument(
        "--colbert-dim", type=int, help="ColBERT dimensions kept (index setting; default all)"
    )
    parser.add_argument(
        "--segment-rows", type=int, help="at most this many rows per segment (index setting max_segment_rows)"
    )
    parser.add_argument(
        "--tokens-pool-factor",
        type=int,
        default=3,
        help="documents get the token counts of this pool factor (Cranfield's pool-3 lengths × 3 / P)",
    )
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)  # the child's step
    args = parser.parse_args()
    TOKENS["pool_factor"] = args.tokens_pool_factor
    storage = storage_settings(args)
    if args.build:
        print(json.dumps(build(args.build, args.root / folder_name(args.build, storage) / "index", storage)))
        return
    args.root.mkdir(parents=True, exist_ok=True)
    for n in args.docs:
        folder = args.root / folder_name(n, storage)
        built = folder / "build.json"
        if args.reuse and built.is_file():
            row = {**json.loads(built.read_text(encoding="utf-8")), "reused_index": True}
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            load_before = os.getloadavg()
            stdout, sampled = build_child(n, args.root, storage)
            row = {"load_before": load_before, **json.loads(stdout.strip().splitlines()[-1]), **sampled}
            row["storage"] = storage
            row["build_date"] = time.strftime("%Y-%m-%d %H:%M")
            built.write_text(json.dumps(row), encoding="utf-8")
        row["load_before_search"] = os.getloadavg()
        row.update(measure(n, folder / "index", args.queries, args.ef, args.warmup))
        row["cpu"] = cpu_model()
        row["load_after"] = os.getloadavg()  # 1 / 5 / 15-minute load: other jobs on the cores show here
        row["date"] = time.strftime("%Y-%m-%d %H:%M")
        print(json.dumps(row), flush=True)
        with args.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def storage_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The index settings given on the command line (ColBERT codes and dimensions, rows per segment)."""
    out: dict[str, Any] = {"colbert_dtype": args.colbert_dtype}
    if args.colbert_dim is not None:
        out["colbert_dim"] = args.colbert_dim
    if args.segment_rows is not None:
        out["max_segment_rows"] = args.segment_rows
    return out


def folder_name(n: int, storage: dict[str, Any]) -> str:
    """The folder of an n-document index with `storage` (the default storage: `n<N>`, as before)."""
    default = {"colbert_dtype": IndexSettings().colbert_dtype}
    tags = [f"{key}-{value}" for key, value in storage.items() if default.get(key) != value]
    if TOKENS["pool_factor"] != 3:
        tags.append(f"tokens-pool{TOKENS['pool_factor']}")
    return "-".join([f"n{n}", *tags])


def storage_flags(storage: dict[str, Any]) -> list[str]:
    """`storage` as the command-line flags that give it (for the child process)."""
    names = {
        "colbert_dtype": "--colbert-dtype",
        "colbert_dim": "--colbert-dim",
        "max_segment_rows": "--segment-rows",
    }
    return [part for key, value in storage.items() for part in (names[key], str(value))]


def build_child(n: int, root: Path, storage: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """Run the `build` step of n documents in a child process (`run_sampled`)."""
    command = [sys.executable, __file__, "--build", str(n), "--root", str(root)]
    command += ["--tokens-pool-factor", str(TOKENS["pool_factor"]), *storage_flags(storage)]
    return run_sampled(command, f"build of {n} documents")


def run_sampled(command: list[str], what: str) -> tuple[str, dict[str, float]]:
    """Run `command` in a child process; its stdout, and the peaks of its resident memory, anonymous and
    file-backed, sampled every 50 ms from /proc. Both count in RSS, but the file-backed pages are page cache
    the kernel can take back (a new segment, prefaulted after the commit when the index fits in half the
    RAM); and the child's own VmHWM misses peaks of pages reclaimed without an unmap."""
    import tempfile

    with (
        tempfile.TemporaryFile("w+") as out,  # files, not pipes: a child's full pipe would wait on us
        tempfile.TemporaryFile("w+") as err,
        subprocess.Popen(
            command, stdout=out, stderr=err, text=True, env={**os.environ, "TRIVEC_QUIET": "1"}
        ) as child,
    ):
        status = Path(f"/proc/{child.pid}/status")
        peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        while child.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    key = line.split(":", 1)[0]
                    if key in peaks:
                        peaks[key] = max(peaks[key], int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.05)
        child.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if child.returncode:
            raise SystemExit(f"{what} failed ({child.returncode}):\n{err.read()[-4000:]}")
    return stdout, {
        "build_peak_rss_sampled_mib": round(peaks["VmRSS"] / 1024, 1),
        "build_peak_anon_mib": round(peaks["RssAnon"] / 1024, 1),
        "build_peak_file_mib": round(peaks["RssFile"] / 1024, 1),
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    return platform.processor()


if __name__ == "__main__":
    main()
