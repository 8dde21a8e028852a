"""Cut-down tasks built in tmp from the real shared data (first rows of each layout), for fast end-to-end runs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def cut_retrieval(src: Path, dst: Path, n_queries: int, n_noise: int) -> Path:
    """The first judged queries, their relevant documents and some other documents."""
    lines = (src / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]
    qrels = [line.split("\t") for line in lines]
    queries = read_jsonl(src / "queries.jsonl")
    judged = {q for q, _, _ in qrels}
    queries = [q for q in queries if q["id"] in judged][:n_queries]
    keep_q = {q["id"] for q in queries}
    rel = [r for r in qrels if r[0] in keep_q]
    need = {r[1] for r in rel}
    docs = read_jsonl(src / "corpus.jsonl")
    corpus = [d for d in docs if d["id"] in need] + [d for d in docs if d["id"] not in need][:n_noise]
    write_jsonl(dst / "corpus.jsonl", corpus)
    write_jsonl(dst / "queries.jsonl", queries)
    (dst / "qrels.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rel), encoding="utf-8"
    )
    return dst


def cut_reranking(src: Path, dst: Path, n_queries: int) -> Path:
    candidates = read_jsonl(src / "candidates.jsonl")[:n_queries]
    keep_q = {c["query-id"] for c in candidates}
    keep_d = {d for c in candidates for d in c["candidates"]}
    write_jsonl(dst / "candidates.jsonl", candidates)
    write_jsonl(dst / "queries.jsonl", [q for q in read_jsonl(src / "queries.jsonl") if q["id"] in keep_q])
    write_jsonl(dst / "corpus.jsonl", [d for d in read_jsonl(src / "corpus.jsonl") if d["id"] in keep_d])
    lines = (src / "qrels.tsv").read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines[1:] if line.split("\t")[0] in keep_q]
    (dst / "qrels.tsv").write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def small_tasks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small folder per task type, in the shared-data layouts."""
    root = tmp_path_factory.mktemp("tasks")
    out = {
        "retrieval": cut_retrieval(DATA / "cranfield", root / "cran-small", n_queries=8, n_noise=40),
        "reranking": cut_reranking(DATA / "trecqa", root / "trecqa-small", n_queries=6),
    }
    sts = [r for r in read_jsonl(DATA / "stsb-multi-mt" / "pairs.jsonl") if r["split"] == "test"]
    write_jsonl(root / "sts-small" / "pairs.jsonl", [r for r in sts if r["lang"] == "en"][:40])
    out["sts"] = root / "sts-small"
    mrpc = [r for r in read_jsonl(DATA / "mrpc" / "pairs.jsonl") if r["split"] == "test"][:40]
    write_jsonl(root / "pairs-small" / "pairs.jsonl", mrpc)
    out["pair-classification"] = root / "pairs-small"
    tatoeba = [r for r in read_jsonl(DATA / "tatoeba-bitext" / "pairs.jsonl") if r["lang"] in ("deu", "fra")]
    write_jsonl(root / "bitext-small" / "pairs.jsonl", [r for r in tatoeba if r["id"] < 25])
    out["bitext"] = root / "bitext-small"
    train = read_jsonl(DATA / "eprstmt" / "train.jsonl")
    test = read_jsonl(DATA / "eprstmt" / "test.jsonl")
    write_jsonl(root / "cls-small" / "train.jsonl", train[:30] + train[-30:])
    write_jsonl(root / "cls-small" / "test.jsonl", test[:30])
    out["classification"] = root / "cls-small"
    clusters = read_jsonl(DATA / "agnews-clustering" / "clusters.jsonl")
    write_jsonl(root / "clu-small" / "clusters.jsonl", clusters[:60])
    out["clustering"] = root / "clu-small"
    # the folders' types and languages, as the shared data's tasks.tsv gives them (bitext rows carry `lang`)
    write_task_index(
        root,
        [
            ("cran-small", "retrieval", "en"),
            ("trecqa-small", "reranking", "en"),
            ("sts-small", "sts", "en"),
            ("pairs-small", "pair-classification", "en"),
            ("bitext-small", "bitext", "multi"),
            ("cls-small", "classification", "zh"),
            ("clu-small", "clustering", "en"),
        ],
    )
    return out


def write_task_index(root: Path, rows: Iterable[tuple[str, str, str]]) -> Path:
    """`root/tasks.tsv` (folder, type, languages) with its header, as in the shared data."""
    path = root / "tasks.tsv"
    path.write_text(
        "folder\ttype\tlanguages\n" + "".join("\t".join(row) + "\n" for row in rows), encoding="utf-8"
    )
    return path
