"""End to end on fixtures: tiny-m3 (all three heads) over one small task of every type, every mode; the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec import Embedder
from trivec.cli import app
from trivec.errors import InputError
from trivec.evaluation import evaluate, task_from_dir
from trivec.evaluation.data import load_reranking, load_retrieval
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.evaluators import EvalSettings, RerankingEvaluator, RetrievalEvaluator
from trivec.evaluation.metrics import retrieval_scores, retrieval_scores_per_query

ALL_MODES = ["dense", "sparse", "colbert", "dense+sparse", "all", "bm25"]


@pytest.fixture(scope="module")
def tiny_run(tiny: Embedder, small_tasks: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    evaluate(tiny, [Path(p) for p in small_tasks.values()], out, progress=False, model_name="tiny-m3")
    return out


def _result(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / f"{name}.json").read_text(encoding="utf-8"))


def test_every_type_runs_and_is_written(tiny_run: Path) -> None:
    names = {
        "cran-small": "retrieval",
        "trecqa-small": "reranking",
        "sts-small-en": "sts",
        "pairs-small": "pair-classification",
        "bitext-small-deu": "bitext",
        "bitext-small-fra": "bitext",
        "cls-small": "classification",
        "clu-small": "clustering",
    }
    for name, kind in names.items():
        result = _result(tiny_run, name)
        assert result["task"]["type"] == kind
        assert result["model"]["name"] == "tiny-m3"
        assert result["model"]["heads"] == ["dense", "sparse", "colbert"]
        assert {"trivec", "torch", "scikit-learn", "pytrec-eval-terrier", "bm25s"} <= set(result["versions"])
        assert result["time"]["total_seconds"] >= 0
        for mode, value in result["main_score"]["values"].items():
            assert 0.0 <= value <= 1.0 or kind == "sts", (name, mode, value)
    assert (tiny_run / "summary.md").is_file() and (tiny_run / "summary.png").stat().st_size > 1000


def test_retrieval_and_reranking_score_every_mode(tiny_run: Path) -> None:
    for name in ("cran-small", "trecqa-small"):
        result = _result(tiny_run, name)
        assert list(result["scores"]) == ALL_MODES
        assert result["skipped_modes"] == {}
        assert result["settings"]["weights"] == {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
        for scores in result["scores"].values():
            assert {"ndcg_at_10", "recall_at_100"} <= set(scores)
    retrieval = _result(tiny_run, "cran-small")["scores"]
    assert {"mrr_at_10", "map"} <= set(retrieval["dense"])
    assert retrieval["bm25"]["ndcg_at_10"] > retrieval["dense"]["ndcg_at_10"]  # a random tiny model vs BM25
    # ColBERT re-ranks the dense top 100 of a 40-odd document corpus: same documents, so the same recall
    assert retrieval["colbert"]["recall_at_100"] == pytest.approx(retrieval["dense"]["recall_at_100"])
    summary = (tiny_run / "summary.md").read_text(encoding="utf-8")
    assert "| cran-small | retrieval | en | ndcg_at_10 |" in summary
    assert "dense+sparse" in summary and "## Averages per task type" in summary
    assert "### tiny-m3: each mode against dense" in summary and "## Paired per query" in summary
    assert "| cran-small | ndcg_at_10 | " in summary


@pytest.mark.parametrize(("name", "metric"), [("cran-small", "ndcg_at_10"), ("trecqa-small", "map")])
def test_ranking_tasks_keep_each_scored_query_s_main_score_per_mode(
    tiny_run: Path, name: str, metric: str
) -> None:
    result = _result(tiny_run, name)
    per_query = result["per_query"]
    assert per_query["metric"] == metric and list(per_query["values"]) == ALL_MODES
    scored = (
        result["details"]["queries"]
        if metric == "ndcg_at_10"
        else result["scores"]["dense"]["evaluated_queries"]
    )
    assert len(per_query["query_ids"]) == scored == len(set(per_query["query_ids"]))
    for mode, values in per_query["values"].items():
        assert len(values) == len(per_query["query_ids"])
        assert np.mean(values) == pytest.approx(result["main_score"]["values"][mode], abs=1e-6)
    assert "per_query" not in _result(tiny_run, "sts-small-en")  # the other types keep none


def test_same_inputs_give_the_same_numbers(
    tiny: Embedder, small_tasks: dict[str, Path], tiny_run: Path
) -> None:
    again = evaluate(
        tiny,
        [small_tasks["retrieval"], small_tasks["classification"], small_tasks["pair-classification"]],
        progress=False,
    )
    for result in again:
        first = _result(tiny_run, result["task"]["name"])
        assert result["scores"] == first["scores"]


def test_mode_scores_equal_embedder_scores(tiny: Embedder, small_tasks: dict[str, Path]) -> None:
    """Evaluation ranks with the very scores `Embedder.score` gives (incl. hybrids over the candidates)."""
    task = task_from_dir(small_tasks["reranking"])[0]
    data = load_reranking(task)
    settings = EvalSettings(modes=("dense", "sparse", "colbert", "dense+sparse", "all"))
    outcome = RerankingEvaluator(settings).evaluate(task, data, TextEncoder(tiny))
    positives = {q: set(d) for q, d in data.qrels.items()}
    # recompute MAP from Embedder.score directly
    from trivec.evaluation.metrics import reranking_scores

    texts = dict(zip(data.corpus_ids, data.corpus_texts, strict=True))
    keys = {"dense": "dense", "sparse": "sparse", "colbert": "colbert", "dense+sparse": "sparse+dense",
            "all": "colbert+sparse+dense"}  # fmt: skip
    direct: dict[str, dict[str, np.ndarray]] = {m: {} for m in keys}
    for query_id, query in zip(data.query_ids, data.query_texts, strict=True):
        scores = tiny.score(query, [texts[d] for d in data.candidates[query_id]])
        for mode, key in keys.items():
            direct[mode][query_id] = scores[key]
    for mode in keys:
        expected = reranking_scores(positives, data.candidates, direct[mode])["map"]
        assert outcome.scores[mode]["map"] == pytest.approx(expected, abs=1e-6), mode


def test_zscore_fusion_ranks_with_the_standardised_embedder_scores(
    tiny: Embedder, small_tasks: dict[str, Path], tmp_path: Path
) -> None:
    """`fusion="zscore"`: the hybrids rank each query's candidates by the weighted mean of the per-mode
    `Embedder.score` values standardised over those candidates; the setting is recorded with the result."""
    from trivec.evaluation.metrics import reranking_scores
    from trivec.retrieval import zscore_scores

    task = task_from_dir(small_tasks["reranking"])[0]
    data = load_reranking(task)
    settings = EvalSettings(modes=("dense+sparse", "all"), fusion="zscore")
    outcome = RerankingEvaluator(settings).evaluate(task, data, TextEncoder(tiny))
    texts = dict(zip(data.corpus_ids, data.corpus_texts, strict=True))
    direct: dict[str, dict[str, np.ndarray]] = {"dense+sparse": {}, "all": {}}
    for query_id, query in zip(data.query_ids, data.query_texts, strict=True):
        scores = tiny.score(query, [texts[d] for d in data.candidates[query_id]])
        pair = {"dense": scores["dense"], "sparse": scores["sparse"]}
        direct["dense+sparse"][query_id] = zscore_scores(pair, settings.weights)
        direct["all"][query_id] = zscore_scores({**pair, "colbert": scores["colbert"]}, settings.weights)
    positives = {q: set(d) for q, d in data.qrels.items()}
    for mode, fused in direct.items():
        expected = reranking_scores(positives, data.candidates, fused)["map"]
        assert outcome.scores[mode]["map"] == pytest.approx(expected, abs=1e-6), mode
    result = evaluate(
        tiny, [small_tasks["retrieval"]], tmp_path, modes="all", fusion="zscore", progress=False
    )[0]
    assert result["settings"]["fusion"] == "zscore"
    assert "hybrids fused zscore" in (tmp_path / "summary.md").read_text(encoding="utf-8")
    weighted = evaluate(tiny, [small_tasks["retrieval"]], modes="all", progress=False)[0]
    assert "fusion" not in weighted["settings"]  # results written before the option read as weighted
    with pytest.raises(InputError, match="unknown fusion 'mean'; expected one of weighted, rrf, zscore"):
        evaluate("no-such-model", [small_tasks["retrieval"]], fusion="mean", progress=False)


def test_dense_retrieval_equals_brute_force(tiny: Embedder, small_tasks: dict[str, Path]) -> None:
    task = task_from_dir(small_tasks["retrieval"])[0]
    data = load_retrieval(task)
    outcome = RetrievalEvaluator(EvalSettings(modes=("dense",))).evaluate(task, data, TextEncoder(tiny))
    q = tiny.encode(data.query_texts, prompt_name="query").dense
    d = tiny.encode(data.corpus_texts, prompt_name="document").dense
    assert q is not None and d is not None
    sims = q @ d.T
    run = {
        qid: {data.corpus_ids[j]: float(sims[i, j]) for j in range(sims.shape[1])}
        for i, qid in enumerate(data.query_ids)
    }
    expected, per_query = retrieval_scores_per_query(data.qrels, run)
    for key in ("ndcg_at_10", "map", "mrr_at_10", "recall_at_100"):
        assert outcome.scores["dense"][key] == pytest.approx(expected[key], abs=1e-6)
    # each query's own value, by query id (not only their mean), and some queries differ
    assert outcome.per_query["dense"].keys() == per_query.keys() == data.qrels.keys()
    for query_id, value in per_query.items():
        assert outcome.per_query["dense"][query_id] == pytest.approx(value, abs=1e-6), query_id
    assert len({round(v, 6) for v in per_query.values()}) > 1


def test_dense_only_model_skips_modes_with_a_note(
    minilm: Embedder, small_tasks: dict[str, Path], tmp_path: Path
) -> None:
    results = evaluate(
        minilm, [small_tasks["retrieval"]], tmp_path, progress=False, prompts={"query": "query: "}
    )
    result = results[0]
    assert list(result["scores"]) == ["dense", "bm25"]
    assert result["skipped_modes"]["sparse"] == "model has no sparse head"
    assert result["skipped_modes"]["all"] == "model has no sparse or ColBERT head"
    assert result["settings"]["prompts"] == {"query": "query: ", "document": ""}


def test_prompts_reach_retrieval_queries_and_corpus_only(
    tiny: Embedder, small_tasks: dict[str, Path]
) -> None:
    tasks = [small_tasks["retrieval"], small_tasks["sts"]]
    plain, queried, both = (
        evaluate(tiny, tasks, modes="dense", prompts=p, progress=False)
        for p in (
            None,
            {"query": "Represent this query for retrieval: "},
            {"query": "q: ", "document": "d: "},
        )
    )
    assert plain[0]["scores"] != queried[0]["scores"]  # retrieval queries changed
    assert plain[1]["scores"] == queried[1]["scores"] == both[1]["scores"]  # STS texts play no role
    assert queried[1]["settings"]["prompts"] == {"text": ""}
    assert both[0]["settings"]["prompts"] == {"query": "q: ", "document": "d: "}
    # the same as encoding the prefixed texts by hand
    task = task_from_dir(small_tasks["retrieval"])[0]
    data = load_retrieval(task)
    q = tiny.encode(["q: " + t for t in data.query_texts]).dense
    d = tiny.encode(["d: " + t for t in data.corpus_texts]).dense
    assert q is not None and d is not None
    sims = q @ d.T
    run = {
        qid: {data.corpus_ids[j]: float(sims[i, j]) for j in range(sims.shape[1])}
        for i, qid in enumerate(data.query_ids)
    }
    assert both[0]["scores"]["dense"]["map"] == pytest.approx(
        retrieval_scores(data.qrels, run)["map"], abs=1e-6
    )


def test_model_prompts_apply_by_role_and_per_task_overrides_win(
    tiny: Embedder, small_tasks: dict[str, Path]
) -> None:
    prompted = Embedder(tiny.model, device="cpu", prompts={"query": "q: ", "document": "d: "})
    tasks = [small_tasks["retrieval"], small_tasks["reranking"]]
    by_model = evaluate(prompted, tasks, modes="dense", progress=False)
    by_call = evaluate(
        tiny, tasks, modes="dense", prompts={"query": "q: ", "document": "d: "}, progress=False
    )
    assert [r["scores"] for r in by_model] == [r["scores"] for r in by_call]
    assert [r["settings"]["prompts"] for r in by_model] == [{"query": "q: ", "document": "d: "}] * 2
    per_task = evaluate(
        prompted, tasks, modes="dense", task_prompts={"cran-small": {"document": ""}}, progress=False
    )
    assert per_task[0]["settings"]["prompts"] == {"query": "q: ", "document": ""}
    assert per_task[1]["settings"]["prompts"] == {"query": "q: ", "document": "d: "}
    with pytest.raises(InputError, match="not selected: nope"):
        evaluate(tiny, tasks, modes="dense", task_prompts={"nope": {"query": "x"}}, progress=False)
    with pytest.raises(InputError, match="per role"):
        evaluate(tiny, tasks, modes="dense", prompts={"classification": "x"}, progress=False)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_eval_and_report(small_tasks: dict[str, Path], tiny_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        ["eval", "--model", str(TINY_M3), "--task-dir", str(small_tasks["sts"]), "--task-dir",
         str(small_tasks["retrieval"]), "--modes", "dense,colbert,bm25", "--weights", "1,0,1", "--output", str(out),
         "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cran-small\tndcg_at_10\tdense" in result.output
    saved = json.loads((out / "cran-small.json").read_text(encoding="utf-8"))
    assert list(saved["scores"]) == ["dense", "colbert", "bm25"]
    assert saved["settings"]["weights"] == {"dense": 1.0, "sparse": 0.0, "colbert": 1.0}
    report = runner.invoke(
        app,
        ["eval-report", str(tiny_run), str(out), "--output", str(tmp_path / "cmp"), "--paired-with", "bm25"],
    )
    assert report.exit_code == 0, report.output
    md = (tmp_path / "cmp" / "summary.md").read_text(encoding="utf-8")
    assert "tiny-m3 · dense" in md and "· bm25" in md
    assert "### tiny-m3: each mode against bm25" in md and "| cran-small | ndcg_at_10 |" in md
    assert (tmp_path / "cmp" / "summary.png").stat().st_size > 1000


def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["eval", "--tasks", "cranfeld", "--output", str(tmp_path)])
    assert bad.exit_code == 2
    assert "unknown task 'cranfeld'; did you mean cranfield" in bad.output
    bad_mode = runner.invoke(
        app, ["eval", "--tasks", "cranfield", "--modes", "dense,splade", "--output", str(tmp_path)]
    )
    assert bad_mode.exit_code == 2 and "unknown mode(s) splade" in bad_mode.output
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "pairs.jsonl").write_text(
        '{"sentence1": "a", "sentence2": "b", "score": 1}\n{oops\n', encoding="utf-8"
    )
    broken = runner.invoke(
        app, ["eval", "--task-dir", str(folder), "--language", "en", "--output", str(tmp_path / "o")]
    )
    assert broken.exit_code == 2 and "pairs.jsonl:2: invalid JSON" in broken.output
    listed = runner.invoke(app, ["eval", "--list-tasks", "--tasks", "type:reranking"])
    assert listed.exit_code == 0 and listed.output.strip() == "trecqa\treranking\ten\tmap"
    prompts = tmp_path / "prompts.json"
    prompts.write_text('["query: "]', encoding="utf-8")
    bad_prompts = runner.invoke(
        app, ["eval", "--tasks", "cranfield", "--prompts-file", str(prompts), "--output", str(tmp_path)]
    )
    assert bad_prompts.exit_code == 2 and "expected a JSON object" in bad_prompts.output


def test_cli_eval_prompt_options(small_tasks: dict[str, Path], tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps({"cran-small": "q: ", "trecqa-small": {"document": "d: "}}), encoding="utf-8"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["eval", "--model", str(TINY_M3), "--task-dir", str(small_tasks["retrieval"]), "--task-dir",
         str(small_tasks["reranking"]), "--modes", "dense", "--query-prompt", "Q: ", "--prompts-file",
         str(prompts), "--output", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _result(out, "cran-small")["settings"]["prompts"] == {"query": "q: ", "document": ""}
    assert _result(out, "trecqa-small")["settings"]["prompts"] == {"query": "Q: ", "document": "d: "}


def test_cli_eval_names_the_fusion_only_where_a_hybrid_ran(
    small_tasks: dict[str, Path], tmp_path: Path
) -> None:
    common = ["eval", "--model", str(TINY_M3), "--task-dir", str(small_tasks["retrieval"]), "--fusion", "zscore",
              "--quiet"]  # fmt: skip
    single = CliRunner().invoke(app, [*common, "--modes", "dense,bm25", "--output", str(tmp_path / "a")])
    assert single.exit_code == 0, single.output
    assert "cran-small\tndcg_at_10\t" in single.output and "hybrids fused" not in single.output
    hybrid = CliRunner().invoke(app, [*common, "--modes", "dense,all", "--output", str(tmp_path / "b")])
    assert hybrid.exit_code == 0, hybrid.output
    assert "(hybrids fused by zscore)" in hybrid.output
    again = CliRunner().invoke(
        app, [*common, "--modes", "dense,all", "--output", str(tmp_path / "b"), "--resume"]
    )
    assert again.exit_code == 0, again.output
    finished = _result(tmp_path / "b", "cran-small")["time"]["finished_at"]
    assert f"(kept: evaluated {finished})" in again.output  # --resume says which results it kept


def test_resume_keeps_a_result_of_this_format_and_reruns_an_older_one(
    tiny: Embedder, small_tasks: dict[str, Path], tmp_path: Path
) -> None:
    first = evaluate(tiny, [small_tasks["retrieval"]], tmp_path, modes="dense,bm25", progress=False)[0]
    target = tmp_path / f"{first['task']['name']}.json"
    kept = json.loads(target.read_text(encoding="utf-8"))
    kept["time"]["finished_at"] = "kept"
    target.write_text(json.dumps(kept), encoding="utf-8")
    again = evaluate(
        tiny, [small_tasks["retrieval"]], tmp_path, modes="dense,bm25", progress=False, resume=True
    )
    assert (
        again[0]["time"]["finished_at"] == "kept" and again[0]["resumed"]
    )  # same model and settings: reused
    assert "resumed" not in json.loads(target.read_text(encoding="utf-8"))  # the file is left as it was
    older = {key: value for key, value in kept.items() if key != "per_query"} | {"format": 1}
    target.write_text(json.dumps(older), encoding="utf-8")
    rerun = evaluate(
        tiny, [small_tasks["retrieval"]], tmp_path, modes="dense,bm25", progress=False, resume=True
    )
    assert rerun[0]["format"] == 2 and rerun[0]["time"]["finished_at"] != "kept" and "resumed" not in rerun[0]
    assert rerun[0]["per_query"]["values"].keys() == {
        "dense",
        "bm25",
    }  # written before per-query values: redone


def test_results_already_in_the_output_are_kept_unless_resume_or_overwrite_says(
    tiny: Embedder, small_tasks: dict[str, Path], tmp_path: Path
) -> None:
    """A second run into the same folder (other modes, another model) replaced the first one's results
    without a word; now it names them and asks for --resume or --overwrite, before anything loads."""
    task = [small_tasks["retrieval"]]
    first = evaluate(tiny, task, tmp_path, modes="dense,bm25", progress=False)[0]
    target = tmp_path / f"{first['task']['name']}.json"
    before = target.read_bytes()
    with pytest.raises(InputError, match=r"holds results of .* already: resume=True keeps"):
        evaluate("no-such-model", task, tmp_path, modes="bm25", progress=False)
    assert target.read_bytes() == before
    replaced = evaluate(tiny, task, tmp_path, modes="bm25", progress=False, overwrite=True)[0]
    assert json.loads(target.read_text(encoding="utf-8"))["main_score"] == replaced["main_score"]
    (tmp_path / "file.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"file\.jsonl is a file; the output is a directory"):
        evaluate(tiny, task, tmp_path / "file.jsonl", modes="bm25", progress=False)
