"""ColBERT storage options of the embedded index: bytes per document against nDCG@10 (issue #19).

    python benchmarks/colbert_quality.py encode            # encode each set once (cached, ≈ minutes each)
    python benchmarks/colbert_quality.py evaluate          # index every set per storage option, nDCG@10

Each retrieval set of `$TRIVEC_SHARED/data` is encoded ONCE with the real default model (bf16) and cached
(`--cache`); every storage option then builds an index from the same encodings through
`Index.add_encoded_batches` and searches with the same encoded queries (`search_vectors`), in every mode
that uses ColBERT (colbert, hybrid). Bytes per document are the index's own (`info()`'s ColBERT files).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SETS = (
    "arcd-test-retrieval",
    "iapp-wiki-qa-dev-retrieval",
    "jaquad-dev-retrieval",
    "parsinlu-rc-dev-retrieval",
    "tquad-dev-retrieval",
    "tydiqa-id-dev-retrieval",
    "cmrc2018-trial-retrieval",
    "cranfield",
    "cacm",
    "vaswani-npl",
    "lisa",
)
# (label, settings): today's default first
OPTIONS: dict[str, dict[str, Any]] = {
    "fp16 (old default)": {"colbert_dtype": "float16", "colbert_pool_factor": 1},
    "int8": {"colbert_dtype": "int8", "colbert_pool_factor": 1},
    "pool2 fp16": {"colbert_dtype": "float16", "colbert_pool_factor": 2},
    "pool2 int8": {"colbert_dtype": "int8", "colbert_pool_factor": 2},
    "pool2 int8 d128": {"colbert_dtype": "int8", "colbert_pool_factor": 2, "colbert_dim": 128},
    "pool2 int8 d192": {"colbert_dtype": "int8", "colbert_pool_factor": 2, "colbert_dim": 192},
    "pool3 int8": {"colbert_dtype": "int8", "colbert_pool_factor": 3},
    "pool3 int8 d192": {"colbert_dtype": "int8", "colbert_pool_factor": 3, "colbert_dim": 192},
    "pool2 int4": {"colbert_dtype": "int4", "colbert_pool_factor": 2},
    "pool3 int4": {"colbert_dtype": "int4", "colbert_pool_factor": 3},
    # the default before the floor under pooling (the labels above keep the index's default floor, 32)
    "pool3 int4 no floor": {"colbert_dtype": "int4", "colbert_pool_factor": 3, "colbert_pool_floor": 0},
    "pool3 int4 d128": {"colbert_dtype": "int4", "colbert_pool_factor": 3, "colbert_dim": 128},
    "pool3 binary": {"colbert_dtype": "binary", "colbert_pool_factor": 3},
    "binary": {"colbert_dtype": "binary", "colbert_pool_factor": 1},
    "pool2 binary": {"colbert_dtype": "binary", "colbert_pool_factor": 2},
    # residual codes (centroid id + 1 or 2 bits per dimension, `trivec.retrieval.residual`)
    "residual2": {"colbert_dtype": "residual2", "colbert_pool_factor": 1},
    "residual1": {"colbert_dtype": "residual1", "colbert_pool_factor": 1},
    "pool2 residual2": {"colbert_dtype": "residual2", "colbert_pool_factor": 2},
    "pool2 residual1": {"colbert_dtype": "residual1", "colbert_pool_factor": 2},
    "pool3 residual2": {"colbert_dtype": "residual2", "colbert_pool_factor": 3},
    "pool3 residual1": {"colbert_dtype": "residual1", "colbert_pool_factor": 3},
    # the codebook fitted on documents of the six other sets (`FIT_DOCS_PER_SET` each: `fit_sample`), deleted
    # before the searches: every document of the set coded out of sample, as in a large build; 256 each give
    # ≥ 74k pooled tokens, so the index's fit takes its full 65,536-token sample from them alone
    "pool2 residual1 fit-others": {
        "colbert_dtype": "residual1",
        "colbert_pool_factor": 2,
        "fit_on": "others",
    },
    "pool2 residual2 fit-others": {
        "colbert_dtype": "residual2",
        "colbert_pool_factor": 2,
        "fit_on": "others",
    },
    "pool3 residual2 fit-others": {
        "colbert_dtype": "residual2",
        "colbert_pool_factor": 3,
        "fit_on": "others",
    },
    "pool3 residual1 fit-others": {
        "colbert_dtype": "residual1",
        "colbert_pool_factor": 3,
        "fit_on": "others",
    },
    "residual1 fit-others": {"colbert_dtype": "residual1", "colbert_pool_factor": 1, "fit_on": "others"},
    # the codebook fitted on the first 64 documents only (`first_batch`), the others coded out of sample —
    # as in a large build, where the first 256 documents fit it; without it a set smaller than a batch
    # (256 documents) is coded by a codebook fitted on itself
    "pool2 residual1 fit64": {"colbert_dtype": "residual1", "colbert_pool_factor": 2, "first_batch": 64},
    "pool2 residual2 fit64": {"colbert_dtype": "residual2", "colbert_pool_factor": 2, "first_batch": 64},
    "pool3 residual2 fit64": {"colbert_dtype": "residual2", "colbert_pool_factor": 3, "first_batch": 64},
    "pool3 residual1 fit64": {"colbert_dtype": "residual1", "colbert_pool_factor": 3, "first_batch": 64},
}
MODES = ("colbert", "hybrid")
FIT_DOCS_PER_SET = 256  # per other set (43 × 6 ≈ one ingestion batch: how the fit was measured before)


def data_dir() -> Path:
    return Path(os.environ.get("TRIVEC_SHARED", "/work/shared")) / "data"


def encode_set(name: str, cache: Path, batch: int = 64) -> None:
    """Documents and judged queries of one set, encoded once with the default model, pickled."""
    from trivec.evaluation.data import read_ids_and_texts, read_qrels, read_queries
    from trivec.inference.encoder import Embedder
    from trivec.retrieval.base import encode_chunks
    from trivec.retrieval.corpus import Document, chunk_documents

    out = cache / f"{name}.pkl"
    if out.exists():
        return
    folder = data_dir() / name
    ids, texts = read_ids_and_texts(folder / "corpus.jsonl")
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    docs = [Document.coerce({"id": r["id"], "title": r.get("title"), "text": r["text"]}, "doc") for r in rows]
    qrels, _ = read_qrels(folder / "qrels.tsv")
    queries = read_queries(folder / "queries.jsonl")
    query_ids = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
    embedder = Embedder.from_pretrained("m3-small", dtype="bfloat16")
    started = time.perf_counter()
    chunks = chunk_documents(docs)
    encoded = []
    for _, result in encode_chunks(
        embedder, chunks, True, True, None, prompt=embedder.resolve_prompt("document")
    ):
        encoded.append(result)
    q = embedder.encode(
        [queries[i] for i in query_ids], dense=True, sparse=True, colbert=True, prompt_name="query"
    )
    payload = {
        "docs": [{"id": d.id, "title": d.title, "text": d.text} for d in docs],
        "encoded": encoded,
        "query_ids": query_ids,
        "queries": q,
        "qrels": qrels,
        "seconds": time.perf_counter() - started,
    }
    assert len(ids) == len(docs) and len(texts) == len(docs)
    with (cache / f"{name}.tmp").open("wb") as handle:
        pickle.dump(payload, handle, protocol=5)
    (cache / f"{name}.tmp").rename(out)
    print(f"{name}: {len(docs)} docs, {len(query_ids)} queries, {payload['seconds']:.0f} s", flush=True)


def fit_sample(cache: Path) -> dict[str, tuple[list[dict[str, Any]], Any]]:
    """The first `FIT_DOCS_PER_SET` documents of every cached set and their encodings (cached beside them in
    `fit-sample-<n>.pkl`): what `fit_on: others` fits a codebook on."""
    out = cache.parent / f"fit-sample-{FIT_DOCS_PER_SET}.pkl"
    if out.exists():
        with out.open("rb") as handle:
            return dict(pickle.load(handle))
    sample = {}
    for path in sorted(cache.glob("*.pkl")):
        with path.open("rb") as handle:
            data = pickle.load(handle)
        first = data["encoded"][0]
        n = min(FIT_DOCS_PER_SET, len(first))
        sample[path.stem] = (data["docs"][:n], first.rows(0, n))
        del data
    with out.open("wb") as handle:
        pickle.dump(sample, handle, protocol=5)
    return sample


def others_batch(cache: Path, name: str) -> tuple[list[dict[str, Any]], Any]:
    """One batch of the other sets' sample documents (ids prefixed `fit:`), their encodings concatenated."""
    from trivec.inference.encoder import EncodeResult

    named = [(other, part) for other, part in fit_sample(cache).items() if other != name]
    docs = [{**d, "id": f"fit:{other}:{d['id']}"} for other, (ds, _) in named for d in ds]
    return docs, EncodeResult.concat([encoded for _, (_, encoded) in named])


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    from trivec.evaluation.metrics import retrieval_scores

    return float(retrieval_scores(qrels, run, [10])["ndcg_at_10"])


def evaluate_set(
    name: str, cache: Path, root: Path, options: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Index one set once per storage option from the cached encodings; nDCG@10 per mode and bytes/doc."""
    from trivec.inference.encoder import Embedder
    from trivec.retrieval import Index

    with (cache / f"{name}.pkl").open("rb") as handle:
        data = pickle.load(handle)
    embedder = Embedder.from_pretrained("m3-small", dtype="bfloat16")
    rows = []
    for label, options_of in options.items():
        settings = dict(options_of)
        first = settings.pop("first_batch", None)  # documents in the first batch (what fits a codebook)
        foreign = others_batch(cache, name) if settings.pop("fit_on", None) == "others" else None
        path = root / name
        shutil.rmtree(path, ignore_errors=True)
        started = time.perf_counter()
        index = Index.create(path, model=embedder, **settings)
        offset, batches = 0, [foreign] if foreign is not None else []
        for result in data["encoded"]:
            n = len(result)
            cuts = [0, first, n] if first is not None and offset == 0 and first < n else [0, n]
            for lo, hi in itertools.pairwise(cuts):
                part = result if (lo, hi) == (0, n) else result.rows(lo, hi)
                batches.append((data["docs"][offset + lo : offset + hi], part))
            offset += n
        index.add_encoded_batches(iter(batches))
        if foreign is not None:  # the other sets' documents fitted the codebook: gone before the searches
            index.delete([d["id"] for d in foreign[0]])
            index.compact()
        built = time.perf_counter() - started
        info = index.info()
        row: dict[str, Any] = {
            "set": name,
            "option": label,
            "colbert_bytes_per_doc": info["bytes"]["colbert"] / max(1, info["documents"]),
            "build_s": built,
        }
        for mode in MODES:
            started = time.perf_counter()
            hits = index.search_vectors(data["queries"], top_k=10, mode=mode)
            row[f"{mode}_ms"] = 1000 * (time.perf_counter() - started) / len(data["query_ids"])
            run = {
                q: {h.doc_id: float(h.score) for h in hs}
                for q, hs in zip(data["query_ids"], hits, strict=True)
            }
            row[mode] = 100 * ndcg10({q: data["qrels"][q] for q in data["query_ids"]}, run)
        index.close()
        shutil.rmtree(path, ignore_errors=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Mean over sets per option: ColBERT bytes/doc, × smaller than the first option, nDCG@10 per mode."""
    options = list(dict.fromkeys(r["option"] for r in rows))
    sets = sorted(
        s for s in {r["set"] for r in rows} if {r["option"] for r in rows if r["set"] == s} >= set(options)
    )
    rows = [r for r in rows if r["set"] in sets]  # sets measured with every option
    base = [r for r in rows if r["option"] == options[0]]
    base_bytes = np.mean([r["colbert_bytes_per_doc"] for r in base])
    lines = [
        f"sets ({len(sets)}): {', '.join(sets)}",
        "",
        "| option | ColBERT bytes/doc | smaller | "
        + " | ".join(f"{m} nDCG@10 (Δ)" for m in MODES)
        + " | hybrid ms/query |",
        "|---|---:|---:|" + "---:|" * (len(MODES) + 1),
    ]
    for option in options:
        mine = [r for r in rows if r["option"] == option]
        size = np.mean([r["colbert_bytes_per_doc"] for r in mine])
        cells = []
        for mode in MODES:
            value = np.mean([r[mode] for r in mine])
            delta = value - np.mean([r[mode] for r in base])
            cells.append(f"{value:.2f} ({delta:+.2f})")
        ms = np.mean([r["hybrid_ms"] for r in mine])
        lines.append(
            f"| {option} | {size:,.0f} | {base_bytes / size:.1f}× | " + " | ".join(cells) + f" | {ms:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=("encode", "evaluate", "table"))
    parser.add_argument("--sets", nargs="*", default=list(SETS))
    parser.add_argument("--options", nargs="*", default=None, help="labels of OPTIONS (default: all)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/trivec-i19/enc"))
    parser.add_argument("--root", type=Path, default=Path("/tmp/trivec-i19/idx"))
    parser.add_argument("--results", type=Path, default=Path("/tmp/trivec-i19/colbert_quality.jsonl"))
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.step == "encode":
        for name in args.sets:
            encode_set(name, args.cache)
        return
    if args.step == "evaluate":
        options = {k: OPTIONS[k] for k in (args.options or OPTIONS)}
        with args.results.open("a", encoding="utf-8") as out:
            for name in args.sets:
                for row in evaluate_set(name, args.cache, args.root, options):
                    out.write(json.dumps(row) + "\n")
                out.flush()
    rows = [json.loads(line) for line in args.results.open(encoding="utf-8")]
    print(f"CPU: {platform.processor() or platform.machine()}, python {sys.version.split()[0]}")
    print(table(rows))


if __name__ == "__main__":
    main()
