"""Every task's language comes from the data: tasks.tsv, rows' `lang`, or --language — never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import DATA
from tests.evaluation.conftest import write_jsonl, write_task_index
from trivec.cli import app
from trivec.errors import InputError
from trivec.evaluation.registry import builtin_tasks, read_task_index, task_from_dir
from trivec.evaluation.tasks import TaskType, select_tasks
from trivec.languages import language_code


def retrieval_folder(
    folder: Path, text: str = "東京は日本の首都です。", query: str = "日本の首都は?"
) -> Path:
    write_jsonl(folder / "corpus.jsonl", [{"id": "d1", "text": text}, {"id": "d2", "text": "大阪"}])
    write_jsonl(folder / "queries.jsonl", [{"id": "q1", "text": query}])
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return folder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory in the shared layout: an indexed Japanese set, a multilingual STS set, a training set,
    a Thai set the index does not list, and a folder with a protocol (banking77: classification + clusters)."""
    root = tmp_path / "data"
    retrieval_folder(root / "ja-qa")
    write_jsonl(
        root / "sts-multi" / "pairs.jsonl",
        [
            {"sentence1": "a", "sentence2": "b", "score": 1.0, "lang": "de"},
            {"sentence1": "c", "sentence2": "d", "score": 2.0, "lang": "fr"},
        ],
    )
    write_jsonl(root / "qa-train" / "train.jsonl", [{"query": "q", "pos": ["p"], "neg": []}])
    retrieval_folder(root / "not-listed", "สวัสดี", "สวัสดี")
    labelled = [{"text": f"t{i}", "label": i % 2} for i in range(8)]
    write_jsonl(root / "banking77" / "train.jsonl", labelled)
    write_jsonl(root / "banking77" / "test.jsonl", labelled)
    write_jsonl(root / "banking77" / "clusters.jsonl", labelled)
    write_task_index(
        root,
        [
            ("ja-qa", "retrieval", "ja"),
            ("sts-multi", "sts", "de fr"),
            ("qa-train", "training", "ja"),
            ("banking77", "classification", "en"),
        ],
    )
    return root


def test_tasks_tsv_gives_types_languages_and_the_task_list(data_dir: Path) -> None:
    tasks = {t.name: t for t in builtin_tasks(data_dir)}
    assert {name: (t.type, t.languages) for name, t in tasks.items()} == {
        "ja-qa": (TaskType.RETRIEVAL, ("ja",)),
        "sts-multi-de": (TaskType.STS, ("de",)),
        "sts-multi-fr": (TaskType.STS, ("fr",)),
        "banking77": (TaskType.CLASSIFICATION, ("en",)),
        "banking77-clustering": (TaskType.CLUSTERING, ("en",)),  # the protocol's second task, same language
    }
    assert tasks["banking77"].samples_per_label == 8  # protocol details kept
    assert [t.name for t in select_tasks("all", list(tasks.values()), languages=["ja"])] == ["ja-qa"]
    index = read_task_index(data_dir)
    assert index is not None and index["qa-train"].type is None and index["ja-qa"].languages == ("ja",)


def test_a_training_folder_is_never_a_task(data_dir: Path) -> None:
    assert "qa-train" not in {t.path.name for t in builtin_tasks(data_dir)}
    with pytest.raises(InputError, match=r"tasks.tsv:4 lists it as training data, not an evaluation task"):
        task_from_dir(data_dir / "qa-train")
    shared = {t.path.name for t in builtin_tasks(DATA)}
    assert not {"jaquad-train", "tquad-train", "arcd-train", "piaf-train", "cmrc2018-train"} & shared


def test_task_dir_language_comes_from_the_index_beside_it_or_the_option(data_dir: Path) -> None:
    assert task_from_dir(data_dir / "ja-qa")[0].languages == ("ja",)
    assert task_from_dir(data_dir / "ja-qa", language="zh")[0].languages == ("zh",)  # the option wins
    assert task_from_dir(data_dir / "not-listed", language="TH")[0].languages == ("th",)
    assert task_from_dir(DATA / "arcd-test-retrieval")[0].languages == ("ar",)
    with pytest.raises(InputError, match=r"not-listed: no language for this retrieval task: pass --language"):
        task_from_dir(data_dir / "not-listed")
    with pytest.raises(InputError, match=r"unknown language code 'thai'.*did you mean th\?"):
        task_from_dir(data_dir / "not-listed", language="thai")


def test_without_an_index_languages_come_from_rows_or_are_an_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_jsonl(
        root / "pairs" / "pairs.jsonl",
        [
            {"sentence1": "a", "sentence2": "b", "score": 1.0, "lang": "deu"},
            {"sentence1": "c", "sentence2": "d", "score": 2.0, "lang": "pt-BR"},
        ],
    )
    write_jsonl(root / "train-only" / "train.jsonl", [{"query": "q", "pos": ["p"], "neg": []}])
    assert [(t.name, t.languages) for t in builtin_tasks(root)] == [
        ("pairs-deu", ("de",)),
        ("pairs-pt-BR", ("pt",)),
    ]
    retrieval_folder(root / "qa")
    with pytest.raises(InputError, match=r"qa: no language for this retrieval task"):
        builtin_tasks(root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ja-qa\tretrieval\tjp", r"tasks.tsv:2: unknown language code 'jp'.*did you mean ja\?"),
        ("ja-qa\tsearch\tja", r"tasks.tsv:2: unknown task type 'search'; expected one of retrieval"),
        ("ja-qa\tretrieval", r"tasks.tsv:2: expected 3 tab-separated fields"),
    ],
)
def test_a_malformed_index_names_its_line(tmp_path: Path, line: str, message: str) -> None:
    retrieval_folder(tmp_path / "ja-qa")
    (tmp_path / "tasks.tsv").write_text(f"folder\ttype\tlanguages\n{line}\n", encoding="utf-8")
    with pytest.raises(InputError, match=message):
        builtin_tasks(tmp_path)


def test_rows_in_a_language_the_index_does_not_list_are_an_error(data_dir: Path) -> None:
    write_task_index(data_dir, [("sts-multi", "sts", "de")])
    with pytest.raises(
        InputError, match=r"rows in language 'fr' \(fr\), which .*tasks.tsv:2 does not list \(de\)"
    ):
        builtin_tasks(data_dir)


def test_language_codes() -> None:
    assert [language_code(c) for c in ("ja", "AR", "zh-CN", "pt_BR", "en-ext", "cmn", "yue", "pes")] == [
        "ja", "ar", "zh", "pt", "en", "zh", "zh", "fa",
    ]  # fmt: skip
    for bad, hint in (("xx", "xh"), ("farsi", "fa"), ("", None)):
        with pytest.raises(InputError, match="expected an ISO 639-1 code") as error:
            language_code(bad, "--language")
        assert str(error.value).startswith("--language: unknown language code")
        assert "\n" not in str(error.value)
        if hint:
            assert f"did you mean {hint}" in str(error.value)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_task_dir_takes_a_language(data_dir: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(
        app, ["eval", "--list-tasks", "--task-dir", str(data_dir / "not-listed"), "--language", "th"]
    )
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == ["not-listed\tretrieval\tth\tndcg_at_10"]
    indexed = runner.invoke(app, ["eval", "--list-tasks", "--task-dir", str(data_dir / "ja-qa")])
    assert indexed.exit_code == 0 and indexed.output.splitlines() == ["ja-qa\tretrieval\tja\tndcg_at_10"]


def test_cli_language_errors_are_one_line(data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "--list-tasks", "--task-dir", str(data_dir / "not-listed")])
    assert missing.exit_code == 2
    assert missing.output.startswith("trivec: error: ") and missing.output.count("\n") == 1
    assert "no language for this retrieval task: pass --language" in missing.output
    unknown = runner.invoke(
        app, ["eval", "--task-dir", str(data_dir / "not-listed"), "--language", "xx", "-o", str(tmp_path)]
    )
    assert unknown.exit_code == 2 and unknown.output.count("\n") == 1
    assert "trivec: error: --language: unknown language code 'xx'" in unknown.output
    training = runner.invoke(app, ["eval", "--list-tasks", "--task-dir", str(data_dir / "qa-train")])
    assert training.exit_code == 2 and "training data, not an evaluation task" in training.output
