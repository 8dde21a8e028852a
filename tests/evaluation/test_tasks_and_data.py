"""The task registry over ../shared/data, type inference, task selection, and loader errors (file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA
from tests.evaluation.conftest import write_jsonl
from trivec.errors import InputError
from trivec.evaluation.data import (
    load_bitext,
    load_classification,
    load_pair_classification,
    load_reranking,
    load_retrieval,
    load_sts,
    write_retrieval_folder,
)
from trivec.evaluation.registry import builtin_tasks, infer_task_type, task_from_dir
from trivec.evaluation.tasks import TaskType, select_tasks


@pytest.fixture(scope="module")
def registry() -> list:
    return builtin_tasks(DATA)


def test_every_evaluation_folder_is_registered(registry: list) -> None:
    folders = {t.path.name for t in registry}
    index = [line.split("\t") for line in (DATA / "tasks.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    training = {folder for folder, kind, _ in index if kind == "training"}
    assert {"flagembedding-examples", "text2vec-zh-train", "jaquad-train", "piaf-train"} <= training
    on_disk = {p.name for p in DATA.iterdir() if p.is_dir()}
    assert folders == on_disk - training
    by_type = {kind: [t.name for t in registry if t.type == kind] for kind in TaskType}
    assert {t.name: t.languages for t in registry if t.type == TaskType.RETRIEVAL} == {
        "vaswani-npl": ("en",),
        "cranfield": ("en",),
        "cacm": ("en",),
        "lisa": ("en",),
        "cmrc2018-trial-retrieval": ("zh",),
        "jaquad-dev-retrieval": ("ja",),
        "tquad-dev-retrieval": ("tr",),
        "iapp-wiki-qa-dev-retrieval": ("th",),
        "tydiqa-id-dev-retrieval": ("id",),
        "arcd-test-retrieval": ("ar",),
        "parsinlu-rc-dev-retrieval": ("fa",),
    }
    assert by_type[TaskType.RERANKING] == ["trecqa"]
    assert "stsb-multi-mt-de" in by_type[TaskType.STS] and "semeval-sts-2014" in by_type[TaskType.STS]
    assert "tatoeba-bitext-deu" in by_type[TaskType.BITEXT] and len(by_type[TaskType.BITEXT]) == 36
    assert "amazon-counterfactual-ja" in by_type[TaskType.CLASSIFICATION]
    assert {"banking77-clustering", "online-shopping-clustering"} <= set(by_type[TaskType.CLUSTERING])


def test_registry_protocols(registry: list) -> None:
    tasks = {t.name: t for t in registry}
    assert tasks["iflytek"].n_experiments == 5 and tasks["iflytek"].samples_per_label == 32  # C-MTEB
    assert tasks["banking77"].samples_per_label == 8  # MTEB default
    assert tasks["ocnli"].main_score == "max_accuracy" and tasks["mrpc"].main_score == "max_ap"
    assert tasks["tatoeba-bitext-cmn"].languages == ("zh", "en")
    assert tasks["amazon-counterfactual-en-ext"].languages == ("en",)
    assert tasks["agnews-clustering-p2p"].text_field == "text_p2p"


def test_select_tasks(registry: list) -> None:
    assert [t.name for t in select_tasks("cranfield,cacm", registry)] == ["cranfield", "cacm"]
    assert len(select_tasks("stsb-multi-mt", registry)) == 11  # a folder name gives all its tasks
    assert {t.type for t in select_tasks("type:clustering", registry)} == {TaskType.CLUSTERING}
    en_zh = select_tasks("all", registry, languages=["en", "zh"])
    names = {t.name for t in en_zh}
    assert (
        "tatoeba-bitext-cmn" in names
        and "tatoeba-bitext-deu" not in names
        and "stsb-multi-mt-de" not in names
    )


def test_bad_task_names_say_what_exists(registry: list) -> None:
    with pytest.raises(InputError, match=r"unknown task 'cranfeld'; did you mean cranfield"):
        select_tasks("cranfeld", registry)
    with pytest.raises(InputError, match="unknown task type"):
        select_tasks("type:ranking", registry)


def test_infer_task_type_of_each_layout(tmp_path: Path) -> None:
    for folder, kind in [
        ("vaswani-npl", TaskType.RETRIEVAL),
        ("trecqa", TaskType.RERANKING),
        ("sick", TaskType.STS),
        ("bustm", TaskType.PAIR_CLASSIFICATION),
        ("tatoeba-bitext", TaskType.BITEXT),
        ("tnews", TaskType.CLASSIFICATION),
        ("csldcp-clustering", TaskType.CLUSTERING),
    ]:
        assert infer_task_type(DATA / folder) == kind
    with pytest.raises(InputError, match="training data only"):
        infer_task_type(DATA / "flagembedding-examples")
    (tmp_path / "corpus.jsonl").write_text('{"id": "1", "text": "x"}\n')
    with pytest.raises(InputError, match=r"qrels.tsv, queries.jsonl is missing"):
        infer_task_type(tmp_path)


def test_task_from_dir_splits_languages_and_never_guesses(tmp_path: Path) -> None:
    rows = [
        {"sentence1": "a b", "sentence2": "a c", "score": 3.0, "lang": "en"},
        {"sentence1": "x", "sentence2": "y", "score": 1.0, "lang": "en"},
        {"sentence1": "一个", "sentence2": "两个", "score": 2.0, "lang": "zh"},
        {"sentence1": "好的", "sentence2": "不好", "score": 0.0, "lang": "zh"},
    ]
    write_jsonl(tmp_path / "mine" / "pairs.jsonl", rows)
    tasks = task_from_dir(tmp_path / "mine")
    assert [(t.name, t.languages, t.type) for t in tasks] == [
        ("mine-en", ("en",), TaskType.STS),
        ("mine-zh", ("zh",), TaskType.STS),
    ]
    assert load_sts(tasks[1]).sentence1 == ["一个", "好的"]
    write_jsonl(
        tmp_path / "zh" / "clusters.jsonl",
        [{"text": "北京天安门", "label": "a"}, {"text": "上海", "label": "b"}],
    )
    with pytest.raises(InputError, match=r"no language for this clustering task: pass --language"):
        task_from_dir(tmp_path / "zh")  # Chinese-looking text is not a language: Japanese uses the same
    assert task_from_dir(tmp_path / "zh", language="zh")[0].languages == ("zh",)


def test_builtin_loaders_read_the_real_data(registry: list) -> None:
    tasks = {t.name: t for t in registry}
    cacm = load_retrieval(tasks["cacm"])
    assert len(cacm.query_ids) == 52 and cacm.unjudged_queries == 12  # README: 64 queries, 52 judged
    assert len(cacm.corpus_ids) == 3204
    trecqa = load_reranking(tasks["trecqa"])
    assert len(trecqa.query_ids) == 133
    assert len(load_sts(tasks["stsb-zh-cnsd"]).gold) == 1361  # the C-MTEB STSB test split
    assert len(load_pair_classification(tasks["ocnli"]).gold) == 1847  # rows with a binary label
    assert len(load_pair_classification(tasks["mrpc"]).gold) == 1725
    assert len(load_bitext(tasks["tatoeba-bitext-deu"]).sentence1) == 1000
    amazon = load_classification(tasks["amazon-counterfactual-de"])
    assert (len(amazon.train_texts), len(amazon.test_texts)) == (5600, 934)


# ----------------------------------------------------------------------------------------------- errors
def _retrieval_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ret"
    write_jsonl(
        folder / "corpus.jsonl", [{"id": "d1", "text": "alpha"}, {"id": "d2", "title": "t", "text": "beta"}]
    )
    write_jsonl(folder / "queries.jsonl", [{"id": "q1", "text": "alpha?"}])
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return folder


def test_retrieval_loader_accepts_a_good_folder(tmp_path: Path) -> None:
    data = load_retrieval(task_from_dir(_retrieval_dir(tmp_path), language="en")[0])
    assert data.corpus_texts == ["alpha", "t beta"]
    assert data.qrels == {"q1": {"d1": 1}}


def test_a_written_retrieval_folder_loads_back(tmp_path: Path) -> None:
    folder = write_retrieval_folder(
        tmp_path / "w", {"d0": 'première "ligne"', "d1": "二"}, {"q0": "où ?"}, [("q0", "d1"), ("q0", "d0")]
    )
    data = load_retrieval(task_from_dir(folder, "retrieval", language="fr")[0])
    assert (data.corpus_ids, data.corpus_texts) == (["d0", "d1"], ['première "ligne"', "二"])
    assert (data.query_ids, data.query_texts) == (["q0"], ["où ?"])
    assert data.qrels == {"q0": {"d0": 1, "d1": 1}}


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "corpus.jsonl",
            '{"id": "d1", "text": "a"}\n{"id": "d2", "text": \n',
            r"corpus.jsonl:2: invalid JSON",
        ),
        (
            "corpus.jsonl",
            '{"id": "d1", "text": "a"}\n{"id": "d1", "text": "b"}\n',
            r"corpus.jsonl:2: duplicate id 'd1'",
        ),
        ("corpus.jsonl", '{"id": "d1"}\n', r"corpus.jsonl:1: field 'text' is missing"),
        ("queries.jsonl", '{"id": "q1", "text": 5}\n', r"queries.jsonl:1: field 'text' is a int"),
        (
            "qrels.tsv",
            "query-id\tcorpus-id\tscore\nq1\td1\n",
            r"qrels.tsv:2: expected 3 tab-separated fields",
        ),
        ("qrels.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tx\n", r"qrels.tsv:2: score 'x' is not an integer"),
        (
            "qrels.tsv",
            "query-id\tcorpus-id\tscore\nq1\td9\t1\n",
            r"qrels.tsv:2: corpus-id 'd9' is not in corpus",
        ),
        ("qrels.tsv", "q1\td1\t1\nq7\td1\t1\n", r"qrels.tsv:2: query-id 'q7' is not in queries"),
    ],
)
def test_malformed_retrieval_files_name_file_and_line(
    tmp_path: Path, file: str, content: str, message: str
) -> None:
    folder = _retrieval_dir(tmp_path)
    (folder / file).write_text(content, encoding="utf-8")
    task = task_from_dir(folder, "retrieval", language="en")[0]
    with pytest.raises(InputError, match=message):
        load_retrieval(task)


def test_malformed_candidates_name_file_and_line(tmp_path: Path) -> None:
    folder = _retrieval_dir(tmp_path)
    write_jsonl(folder / "candidates.jsonl", [{"query-id": "q1", "candidates": ["d1", "nope"]}])
    task = task_from_dir(folder, language="en")[0]
    assert task.type == TaskType.RERANKING
    with pytest.raises(InputError, match=r"candidates.jsonl:1: candidate 'nope' is not in corpus.jsonl"):
        load_reranking(task)


def test_malformed_pairs_name_file_and_line(tmp_path: Path) -> None:
    rows = [
        {"sentence1": "a", "sentence2": "b", "label": 1},
        {"sentence1": "c", "sentence2": "d", "label": 0},
        {"sentence1": "e", "sentence2": "f", "label": 2},
    ]
    write_jsonl(tmp_path / "p" / "pairs.jsonl", rows)
    task = task_from_dir(tmp_path / "p", "pair-classification", language="en")[0]
    with pytest.raises(InputError, match=r"pairs.jsonl:3: field 'label' must be 0 or 1"):
        load_pair_classification(task)
    write_jsonl(tmp_path / "s" / "pairs.jsonl", [{"sentence1": "a", "sentence2": "b", "score": "high"}])
    with pytest.raises(InputError, match=r"pairs.jsonl:1: field 'score' is 'high', not a number"):
        load_sts(task_from_dir(tmp_path / "s", "sts", language="en")[0])


def test_malformed_classification_names_file_and_line(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "c" / "train.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": 1}])
    write_jsonl(tmp_path / "c" / "test.jsonl", [{"text": "a", "label": 0}, {"label": 1}])
    with pytest.raises(InputError, match=r"test.jsonl:2: field 'text' is missing"):
        load_classification(task_from_dir(tmp_path / "c", language="en")[0])
