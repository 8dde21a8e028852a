"""nDCG@10 of `trivec search` over a real retrieval set equals exact brute-force scoring and `trivec eval`.

The set is a slice of Cranfield (the first 25 judged queries; every judged document plus the first 100), so
both models encode it in seconds. MiniLM goes through the CLI (`trivec index build`, `trivec search --json`);
tiny-m3 (all three heads) through the Python API for every mode. Brute force scores every document with
trivec.inference.scoring; pytrec_eval computes nDCG@10 (judged queries missing from a run count as 0, as in
the evaluation module).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from typer.testing import CliRunner

from tests.retrieval.conftest import CRANFIELD
from trivec import Embedder
from trivec.evaluation.data import read_qrels
from trivec.inference.scoring import dense_scores, hybrid_scores, lexical_scores, maxsim_scores
from trivec.retrieval import Index, top_k

Run = dict[str, dict[str, float]]
WEIGHTS = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A retrieval task folder (shared-data layout) cut from Cranfield."""
    if not CRANFIELD.is_dir():
        pytest.skip(f"{CRANFIELD} not found")
    qrels_lines = (CRANFIELD / "qrels.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in qrels_lines[1:]]
    judged_queries = list(dict.fromkeys(q for q, _, _ in rows))[:25]
    keep_rows = [r for r in rows if r[0] in judged_queries]
    corpus = [
        json.loads(line) for line in (CRANFIELD / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    wanted = {d for _, d, _ in keep_rows} | {row["id"] for row in corpus[:100]}
    folder = tmp_path_factory.mktemp("cranfield-slice")
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as out:
        for row in corpus:
            if row["id"] in wanted:
                out.write(json.dumps(row) + "\n")
    queries = [
        json.loads(line) for line in (CRANFIELD / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as out:
        for row in queries:
            if row["id"] in judged_queries:
                out.write(json.dumps(row) + "\n")
    (folder / "qrels.tsv").write_text(
        "\n".join([qrels_lines[0], *("\t".join(r) for r in keep_rows)]) + "\n", encoding="utf-8"
    )
    return folder


def load(folder: Path) -> tuple[list[dict], list[dict], dict[str, dict[str, int]]]:
    corpus = [json.loads(x) for x in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(x) for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    qrels = read_qrels(folder / "qrels.tsv")[0]
    return corpus, queries, qrels


def ndcg10(qrels: dict[str, dict[str, int]], run: Run) -> float:
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
    per_query = evaluator.evaluate({q: docs for q, docs in run.items() if q in qrels})
    return sum(v["ndcg_cut_10"] for v in per_query.values()) / len(qrels)


def evaluation_ndcg(embedder: Embedder, folder: Path, modes: str, max_length: int) -> dict[str, float]:
    from trivec.evaluation import evaluate, task_from_dir

    tasks = task_from_dir(folder, language="en")  # a Cranfield slice: English
    (result,) = evaluate(
        embedder, tasks=tasks, modes=modes, max_length=max_length, progress=False, report=False
    )
    return {mode: scores["ndcg_at_10"] for mode, scores in result["scores"].items()}


def test_cli_search_ndcg_equals_brute_force_and_evaluation(
    minilm: Embedder, task: Path, tmp_path: Path
) -> None:
    from trivec.cli import app

    corpus, queries, qrels = load(task)
    runner = CliRunner()
    built = runner.invoke(
        app,
        [
            "index",
            "build",
            "--model",
            "all-MiniLM-L6-v2",
            "--corpus",
            str(task / "corpus.jsonl"),
            "--index",
            str(tmp_path / "ix"),
            "--max-length",
            "128",
            "-q",
        ],
    )
    assert built.exit_code == 0, built.output
    searched = runner.invoke(
        app,
        [
            "search",
            "--index",
            str(tmp_path / "ix"),
            "--queries",
            str(task / "queries.jsonl"),
            "--mode",
            "dense",
            "--top-k",
            "10",
            "--json",
        ],
    )
    assert searched.exit_code == 0, searched.output
    run: Run = {}
    for line in searched.stdout.splitlines():
        row = json.loads(line)
        run[row["query_id"]] = {h["doc_id"]: h["score"] for h in row["hits"]}

    texts = [f"{row.get('title') or ''} {row['text']}".strip() for row in corpus]
    docs = minilm.encode(texts, max_length=128).dense
    q = minilm.encode([row["text"] for row in queries], prompt_name="query", max_length=128).dense
    assert docs is not None and q is not None
    brute: Run = {}
    for i, row in enumerate(queries):
        scores = dense_scores(q[i], docs)
        brute[row["id"]] = {corpus[j]["id"]: float(scores[j]) for j in top_k(scores, 10)}
    for query_id, docs_scores in run.items():
        assert list(docs_scores) == list(brute[query_id])
    ours = ndcg10(qrels, run)
    assert ours == pytest.approx(ndcg10(qrels, brute), abs=1e-9)
    assert ours == pytest.approx(evaluation_ndcg(minilm, task, "dense", 128)["dense"], abs=1e-6)
    assert ours > 0.2  # MiniLM retrieves Cranfield far above chance


def test_every_mode_ndcg_equals_brute_force_and_evaluation(
    tiny: Embedder, task: Path, tmp_path: Path
) -> None:
    corpus, queries, qrels = load(task)
    index = Index.create(tmp_path / "ix", tiny, max_length=64, colbert_dtype="float32", colbert_pool_factor=1)
    index.add([{"id": r["id"], "title": r.get("title"), "text": r["text"]} for r in corpus])
    texts = [f"{row.get('title') or ''} {row['text']}".strip() for row in corpus]
    p = tiny.encode(texts, dense=True, sparse=True, colbert=True, max_length=64)
    q = tiny.encode(
        [r["text"] for r in queries],
        dense=True,
        sparse=True,
        colbert=True,
        prompt_name="query",
        max_length=64,
    )
    assert p.dense is not None and p.sparse is not None and p.colbert is not None
    assert q.dense is not None and q.sparse is not None and q.colbert is not None

    def brute_run(mode: str) -> Run:
        out: Run = {}
        for i, row in enumerate(queries):
            full = {
                "dense": dense_scores(q.dense[i], p.dense),
                "sparse": lexical_scores(q.sparse[i], p.sparse),
            }
            if mode in ("dense", "sparse"):
                scores = full[mode]
                best = top_k(scores, 10)
                best = best[scores[best] > 0] if mode == "sparse" else best
                out[row["id"]] = {corpus[j]["id"]: float(scores[j]) for j in best}
                continue
            dense_top = top_k(full["dense"], 100)
            sparse_top = top_k(full["sparse"], 100)
            sparse_top = sparse_top[full["sparse"][sparse_top] > 0]
            cands = (
                dense_top if mode == "colbert" else np.array(list(dict.fromkeys([*dense_top, *sparse_top])))
            )
            cands = np.arange(len(corpus)) if mode == "dense+sparse" else cands
            parts = {m: full[m][cands] for m in ("dense", "sparse")}
            parts["colbert"] = maxsim_scores(q.colbert[i], [p.colbert[j] for j in cands])
            if mode == "colbert":
                fused = parts["colbert"]
            elif mode == "dense+sparse":
                fused = hybrid_scores({m: parts[m] for m in ("dense", "sparse")}, WEIGHTS)
            else:
                fused = hybrid_scores(parts, WEIGHTS)
            best = top_k(np.asarray(fused, dtype=np.float64), 10)
            out[row["id"]] = {corpus[cands[j]]["id"]: float(fused[j]) for j in best}
        return out

    searches = {
        "dense": {"mode": "dense"},
        "sparse": {"mode": "sparse"},
        "colbert": {"mode": "colbert"},
        "all": {"mode": "hybrid"},
        "dense+sparse": {"mode": "hybrid", "weights": [0.4, 0.2, 0.0], "candidates": 1000},
    }
    evaluated = evaluation_ndcg(tiny, task, ",".join(searches), 64)
    for name, options in searches.items():
        results = index.search([r["text"] for r in queries], top_k=10, **options)  # type: ignore[arg-type]
        run = {
            row["id"]: {h.doc_id: h.score for h in hits} for row, hits in zip(queries, results, strict=True)
        }  # type: ignore[union-attr]
        ours = ndcg10(qrels, run)
        assert ours == pytest.approx(ndcg10(qrels, brute_run(name)), abs=1e-9), name
        assert ours == pytest.approx(evaluated[name], abs=1e-6), name
