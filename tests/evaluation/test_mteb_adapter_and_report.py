"""The mteb adapter (without mteb installed: its protocol only) and the report over several result directories."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from trivec import Embedder
from trivec.errors import InputError
from trivec.evaluation import MtebEncoder, write_report
from trivec.evaluation.report import distinct_labels, load_run, markdown


class PromptType:
    """Stand-in for mteb's `PromptType` enum (a str enum with `.value`)."""

    def __init__(self, value: str) -> None:
        self.value = value


class Metadata:
    def __init__(self, name: str) -> None:
        self.name = name


def test_encode_accepts_mteb_batches_and_lists(tiny: Embedder) -> None:
    adapter = MtebEncoder(tiny)
    texts = ["a short text", "another, longer text about retrieval", "a short text"]
    batches = [{"text": texts[:2]}, {"text": texts[2:]}]  # what an mteb DataLoader yields
    from_batches = adapter.encode(
        batches, task_metadata=Metadata("STSBenchmark"), hf_split="test", hf_subset="default"
    )
    from_list = adapter.encode(texts)
    expected = tiny.encode(texts).dense
    assert from_batches.dtype == np.float32 and from_batches.shape == (3, tiny.model.hidden_size)
    np.testing.assert_allclose(from_batches, expected, atol=1e-6)
    np.testing.assert_allclose(from_list, expected, atol=1e-6)
    with pytest.raises(TypeError, match="no 'text' field"):
        adapter.encode([{"image": [1]}])


def test_prompt_types_get_the_prompts_per_task(tiny: Embedder) -> None:
    adapter = MtebEncoder(
        tiny,
        prompts={"query": "query: "},
        task_prompts={"T2Retrieval": {"query": "为这个句子生成表示以用于检索相关文章："}},
    )
    query = PromptType("query")
    text = ["what is bge m3"]
    t2 = adapter.encode([{"text": text}], task_metadata=Metadata("T2Retrieval"), prompt_type=query)
    other = adapter.encode([{"text": text}], task_metadata=Metadata("SciFact"), prompt_type=query)
    document = adapter.encode(
        [{"text": text}], task_metadata=Metadata("SciFact"), prompt_type=PromptType("document")
    )
    np.testing.assert_allclose(
        t2,
        tiny.encode(["为这个句子生成表示以用于检索相关文章：" + t for t in text]).dense,
        atol=1e-6,
    )
    np.testing.assert_allclose(other, tiny.encode(["query: " + t for t in text]).dense, atol=1e-6)
    np.testing.assert_allclose(document, tiny.encode(text).dense, atol=1e-6)
    # the model's own prompts by role, with no override
    prompted = MtebEncoder(Embedder(tiny.model, device="cpu", prompts={"query": "q: ", "document": "d: "}))
    np.testing.assert_allclose(
        prompted.encode(text, prompt_type=PromptType("document")),
        tiny.encode(["d: " + t for t in text]).dense,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        prompted.encode_queries(text), tiny.encode(["q: " + t for t in text]).dense, atol=1e-6
    )


def test_similarities_are_cosine(tiny: Embedder) -> None:
    adapter = MtebEncoder(tiny)
    a = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    b = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(adapter.similarity(a, b), [[1.0, 0.8], [0.6, 0.0]], atol=1e-6)
    np.testing.assert_allclose(adapter.similarity_pairwise(a, b), [1.0, 0.0], atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("mteb") is not None, reason="mteb is installed here")
def test_model_meta_needs_mteb_only_when_asked(tiny: Embedder) -> None:
    adapter = MtebEncoder(tiny)  # constructing and encoding never import mteb
    with pytest.raises(ImportError):
        _ = adapter.mteb_model_meta


# ----------------------------------------------------------------------------------------------- report
def _fake_result(task: str, kind: str, metric: str, values: dict[str, float], model: str) -> dict:
    return {
        "format": 1,
        "task": {"name": task, "type": kind, "languages": ["en"], "main_score": metric},
        "main_score": {"metric": metric, "values": values},
        "scores": {m: {metric: v} for m, v in values.items()},
        "skipped_modes": {},
        "model": {"name": model},
        "versions": {"trivec": "0.1.0"},
        "time": {"total_seconds": 30.0},
    }


def _write_run(folder: Path, model: str, shift: float) -> Path:
    folder.mkdir(parents=True)
    rows = [
        _fake_result("r1", "retrieval", "ndcg_at_10", {"dense": 0.5 + shift, "bm25": 0.4}, model),
        _fake_result("r2", "retrieval", "ndcg_at_10", {"dense": 0.3 + shift, "bm25": 0.2}, model),
        _fake_result("s1", "sts", "cosine_spearman", {"dense": 0.8 + shift}, model),
    ]
    for row in rows:
        (folder / f"{row['task']['name']}.json").write_text(json.dumps(row), encoding="utf-8")
    return folder


def test_markdown_averages_per_type(tmp_path: Path) -> None:
    run = load_run(_write_run(tmp_path / "a", "model-a", 0.0))
    md = markdown([run])
    assert "| r1 | retrieval | en | ndcg_at_10 | 50.00 | 40.00 |" in md
    assert "| retrieval | 2 | 40.00 | 30.00 |" in md  # (50 + 30) / 2 and (40 + 20) / 2
    assert "| sts | 1 | 80.00 | – |" in md
    assert "| **all tasks** | 3 | 53.33 | – |" in md  # bm25 does not cover every task: no overall


def _with_queries(folder: Path, model: str, dense: list[float], hybrid: list[float]) -> None:
    """Task r3 in `folder`, keeping per-query values of dense and `all` over queries q1…q4."""
    kept = _fake_result(
        "r3", "retrieval", "ndcg_at_10", {"dense": sum(dense) / 4, "all": sum(hybrid) / 4}, model
    )
    kept["per_query"] = {
        "metric": "ndcg_at_10",
        "query_ids": ["q1", "q2", "q3", "q4"],
        "values": {"dense": dense, "all": hybrid},
    }
    (folder / "r3.json").write_text(json.dumps(kept), encoding="utf-8")


def test_markdown_pairs_each_mode_with_dense_where_results_keep_queries(tmp_path: Path) -> None:
    folder = _write_run(tmp_path / "a", "model-a", 0.0)
    _with_queries(folder, "model-a", [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    md = markdown([load_run(folder)])
    assert "### model-a: each mode against dense" in md
    row = next(line for line in md.splitlines() if line.startswith("| r3 | ndcg_at_10 | 4 | +25.00 ["))
    assert row.endswith(" p 1.000, 1 differ |")  # one query of four changed: any sign flip is as extreme
    assert "| all − dense |" in md and "only they carry the test" in md
    assert "Not paired: r1 (no per-query values: written before they were kept); r2 (" in md
    against_all = markdown([load_run(folder)], paired_with="all")
    assert "### model-a: each mode against all" in against_all
    assert "| r3 | ndcg_at_10 | 4 | -25.00 [" in against_all
    assert markdown([load_run(folder)], paired_with="hybrid") == against_all  # read as --modes reads it
    with pytest.raises(InputError, match="unknown mode to pair with 'best'; expected one of dense, sparse"):
        write_report([folder], tmp_path / "bad", paired_with="best")
    assert not (tmp_path / "bad").exists()
    assert "r3 (no bm25 values)" in markdown([load_run(folder)], paired_with="bm25")


def test_a_later_run_is_paired_with_the_first_by_query_id(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", "model-a", 0.0)
    _with_queries(a, "model-a", [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    b = _write_run(tmp_path / "b", "model-b", 0.1)
    _with_queries(b, "model-b", [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0])
    flipped = json.loads((b / "r3.json").read_text(encoding="utf-8"))
    order = [3, 2, 1, 0]  # the same queries written in another order pair by id, not by position
    block = flipped["per_query"]
    block["query_ids"] = [block["query_ids"][i] for i in order]
    block["values"] = {mode: [values[i] for i in order] for mode, values in block["values"].items()}
    (b / "r3.json").write_text(json.dumps(flipped), encoding="utf-8")
    md = markdown([load_run(a), load_run(b)])
    assert "### model-b against model-a, mode by mode" in md
    row = next(
        line for line in md.splitlines() if line.startswith("| r3 | ndcg_at_10 | 4 | +50.00 [")
    )  # dense: 2 of 4 up
    assert "2 differ | +0.00 [+0.00, +0.00] p 1.000, 0 differ |" in row  # all: the same per query
    assert "| model-b dense − model-a dense | model-b all − model-a all |" in md
    assert "r1 (no per-query values: written before they were kept)" in md


def test_what_cannot_be_paired_is_named_with_why(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", "model-a", 0.0)
    _with_queries(a, "model-a", [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    b = _write_run(tmp_path / "b", "model-b", 0.0)
    (b / "r1.json").unlink()
    # r3 in b: other queries; r4 in b only; b keeps dense alone for r3
    other = _fake_result("r3", "retrieval", "ndcg_at_10", {"dense": 0.5}, "model-b")
    other["per_query"] = {"metric": "ndcg_at_10", "query_ids": ["q1", "q2", "x3", "x4"],
                          "values": {"dense": [1.0, 0.0, 1.0, 0.0]}}  # fmt: skip
    (b / "r3.json").write_text(json.dumps(other), encoding="utf-8")
    only = _fake_result("r4", "retrieval", "ndcg_at_10", {"dense": 0.5}, "model-b")
    (b / "r4.json").write_text(json.dumps(only), encoding="utf-8")
    md = markdown([load_run(a), load_run(b)])
    assert "r3 (only dense was scored)" in md  # model-b's own table
    assert "r3 (other queries (4 vs 4, 2 shared))" in md and "r4 (not in model-a)" in md
    assert "r1 (not in model-b)" in md
    metric = json.loads((b / "r3.json").read_text(encoding="utf-8"))
    metric["per_query"]["query_ids"] = ["q1", "q2", "q3", "q4"]
    metric["per_query"]["metric"] = metric["main_score"]["metric"] = "map"
    (b / "r3.json").write_text(json.dumps(metric), encoding="utf-8")
    assert "r3 (other metric (map vs ndcg_at_10))" in markdown([load_run(a), load_run(b)])
    plain = _write_run(tmp_path / "c", "model-c", 0.0)
    md = markdown([load_run(plain), load_run(a)])
    assert "model-a is not paired with model-c: model-c keeps no per-query values." in md


def test_a_folder_given_by_a_bare_name_is_labelled_without_a_stray_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write_run(tmp_path / "eval", "same-model", 0.0)
    second = _write_run(tmp_path / "y" / "eval", "same-model", 0.1)
    monkeypatch.chdir(tmp_path)
    runs = [load_run(Path(first.name)), load_run(second)]  # `trivec eval-report eval y/eval`
    distinct_labels(runs)
    assert [r.label for r in runs] == ["same-model (eval)", "same-model (y/eval)"]


def test_runs_get_distinct_labels_once_and_a_folder_twice_is_refused(tmp_path: Path) -> None:
    first = _write_run(tmp_path / "x" / "eval", "same-model", 0.0)
    second = _write_run(tmp_path / "y" / "eval", "same-model", 0.1)
    runs = [load_run(first), load_run(second)]
    markdown(runs)
    md = markdown(runs)  # a second page of the same runs names them the same way
    assert "same-model (x/eval) · dense" in md and "same-model (y/eval) · dense" in md
    assert "(eval) (" not in md
    with pytest.raises(InputError, match="result directory given twice"):
        write_report([first, tmp_path / "x" / "eval"], tmp_path / "out")


def test_averages_of_a_column_missing_tasks_say_so(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", "model-a", 0.0)
    b = _write_run(tmp_path / "b", "model-b", 0.1)
    (b / "r2.json").unlink()
    md = markdown([load_run(a), load_run(b)])
    assert "| retrieval | 2 | 40.00 | 30.00 | 60.00 (1 of 2) | 40.00 (1 of 2) |" in md
    assert "| **all tasks** | 3 | 53.33 | – | – | – |" in md  # model-b lacks r2: no overall mean
    assert "## Paired per query" not in md  # no result keeps per-query values: no paired section at all
    _with_queries(b, "model-b", [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    assert "## Paired per query" in markdown([load_run(a), load_run(b)])  # the heading the check looks for


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([1, 2], "expected an object with 'metric', 'query_ids' and 'values'"),
        ({"metric": "ndcg_at_10", "query_ids": ["q1", "q1"], "values": {}}, "distinct ids"),
        ({"metric": "ndcg_at_10", "query_ids": [], "values": {"dense": []}}, "'query_ids' is empty"),
        ({"metric": "ndcg_at_10", "query_ids": ["q1"], "values": {"dense": ["x"]}}, "'dense' holds text"),
        ({"metric": "ndcg_at_10", "query_ids": ["q1", "q2"], "values": {"dense": [1.0]}}, r"one value per query id \(2\)"),
        ({"metric": "ndcg_at_10", "query_ids": ["q1"], "values": {"dense": [5.0]}}, "average 5.0+, not its main score"),
        ({"metric": "map", "query_ids": ["q1"], "values": {"dense": [0.5]}}, "'map' is not the main score"),
    ],
)  # fmt: skip
def test_a_result_with_a_broken_per_query_block_is_named(tmp_path: Path, block: object, message: str) -> None:
    folder = _write_run(tmp_path / "a", "model-a", 0.0)
    broken = _fake_result("r3", "retrieval", "ndcg_at_10", {"dense": 0.5}, "model-a") | {"per_query": block}
    (folder / "r3.json").write_text(json.dumps(broken), encoding="utf-8")
    with pytest.raises(InputError, match=f"r3.json: per_query: .*{message}"):
        load_run(folder)


def test_report_compares_runs(tmp_path: Path) -> None:
    a = _write_run(tmp_path / "a", "model-a", 0.0)
    b = _write_run(tmp_path / "b", "model-b", 0.1)
    md_path, png = write_report([a, b], tmp_path / "out")
    md = md_path.read_text(encoding="utf-8")
    assert "model-a · dense" in md and "model-b · dense" in md and "model-b · bm25" in md
    assert "| retrieval | 2 | 40.00 | 30.00 | 50.00 | 30.00 |" in md
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="no task results"):
        load_run(tmp_path / "out")
    with pytest.raises(InputError, match="2 labels for 1"):
        write_report([a], tmp_path / "o2", labels=["x", "y"])
