"""Loaders for the evaluation layouts of `shared/data/README.md`; every malformed row names its file and line.

retrieval: `corpus.jsonl` {"id","title"?,"text"}, `queries.jsonl` {"id","text"}, `qrels.tsv`
(`query-id<TAB>corpus-id<TAB>score`, header optional); reranking: the same plus `candidates.jsonl`
{"query-id","candidates":[ids]}; STS / pair classification / bitext: `pairs.jsonl`; classification:
`train.jsonl` + `test.jsonl` {"text","label"}; clustering: `clusters.jsonl` {"text","label"}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.evaluation.tasks import Task, TaskType
from trivec.io import iter_jsonl, numbered_lines


@dataclass
class RetrievalData:
    """Corpus, the judged queries and their qrels (`{query: {doc: grade}}`, grades > 0 are relevant)."""

    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    unjudged_queries: int = 0
    candidates: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PairData:
    """Aligned sentence pairs with a gold value each (a score for STS, 0/1 for pair classification)."""

    sentence1: list[str]
    sentence2: list[str]
    gold: list[float]


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[Any]
    test_texts: list[str]
    test_labels: list[Any]


@dataclass
class ClusteringData:
    texts: list[str]
    labels: list[str]


def _string_field(path: Path, number: int, row: Mapping[str, Any], key: str, optional: bool = False) -> str:
    value = row.get(key)
    if value is None and optional:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key in ("id", "query-id"):
        return str(value)
    if not isinstance(value, str):
        problem = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise InputError(f"{path}:{number}: field {key!r} is {problem}")
    return value


def _matches(row: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    return all(row.get(k) == v for k, v in filters.items())


def _need(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


# ----------------------------------------------------------------------------------------------- retrieval
def read_ids_and_texts(path: Path) -> tuple[list[str], list[str]]:
    """Ids and texts (`"{title} {text}".strip()`, as MTEB / FlagEmbedding join them)."""
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(_need(path)):
        doc_id = _string_field(path, number, row, "id")
        title = _string_field(path, number, row, "title", optional=True)
        text = _string_field(path, number, row, "text")
        if doc_id in seen:
            raise InputError(f"{path}:{number}: duplicate id {doc_id!r} (first at line {seen[doc_id]})")
        seen[doc_id] = number
        ids.append(doc_id)
        texts.append(f"{title} {text}".strip())
    if not ids:
        raise InputError(f"{path}: no documents")
    return ids, texts


def read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, row in iter_jsonl(_need(path)):
        query_id = _string_field(path, number, row, "id")
        if query_id in queries:
            raise InputError(f"{path}:{number}: duplicate id {query_id!r} (first at line {lines[query_id]})")
        queries[query_id] = _string_field(path, number, row, "text")
        lines[query_id] = number
    return queries


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """`{query: {doc: grade}}` and the line of each judgement (for error messages)."""
    qrels: dict[str, dict[str, int]] = {}
    lines: dict[tuple[str, str], int] = {}
    for number, raw in numbered_lines(str(path), _need(path)):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if number == 1 and parts[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        if len(parts) != 3:
            raise InputError(
                f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(parts)}"
            )
        query_id, doc_id, grade_text = (p.strip() for p in parts)
        try:
            grade = int(grade_text)
        except ValueError:
            try:
                as_float = float(grade_text)
            except ValueError:
                as_float = float("nan")
            if not as_float.is_integer():
                raise InputError(
                    f"{path}:{number}: score {grade_text!r} is not an integer relevance grade"
                ) from None
            grade = int(as_float)
        if not query_id or not doc_id:
            raise InputError(f"{path}:{number}: empty query-id or corpus-id")
        qrels.setdefault(query_id, {})[doc_id] = grade
        lines[(query_id, doc_id)] = number
    return qrels, lines


def _read_judged_folder(
    folder: Path,
) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    """Corpus ids and texts, queries and qrels of a retrieval-style task folder; every judgement must name
    a query of queries.jsonl and a document of corpus.jsonl."""
    corpus_ids, corpus_texts = read_ids_and_texts(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrels, lines = read_qrels(folder / "qrels.tsv")
    known = set(corpus_ids)
    for (query_id, doc_id), number in lines.items():
        if query_id not in queries:
            raise InputError(
                f"{folder / 'qrels.tsv'}:{number}: query-id {query_id!r} is not in queries.jsonl"
            )
        if doc_id not in known:
            raise InputError(f"{folder / 'qrels.tsv'}:{number}: corpus-id {doc_id!r} is not in corpus.jsonl")
    return corpus_ids, corpus_texts, queries, qrels


def write_retrieval_folder(
    target: Path, corpus: Mapping[str, str], queries: Mapping[str, str], qrels: Iterable[tuple[str, str]]
) -> Path:
    """A retrieval folder in the layout `load_retrieval` reads — `corpus.jsonl` and `queries.jsonl` ({id,
    text}), `qrels.tsv` (relevance 1 per (query id, document id)) — as recipes build validation sets."""
    target.mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        with (target / name).open("w", encoding="utf-8") as handle:
            for ident, text in rows.items():
                handle.write(json.dumps({"id": ident, "text": text}, ensure_ascii=False) + "\n")
    with (target / "qrels.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(f"{query}\t{doc}\t1\n" for query, doc in qrels)
    return target


def load_retrieval(task: Task) -> RetrievalData:
    """Corpus, judged queries (queries without a positive judgement are not evaluated) and qrels."""
    folder = task.path
    corpus_ids, corpus_texts, queries, qrels = _read_judged_folder(folder)
    judged = {q: docs for q, docs in qrels.items() if any(g > 0 for g in docs.values())}
    query_ids = [q for q in queries if q in judged]
    if not query_ids:
        raise InputError(f"{folder / 'qrels.tsv'}: no query has a relevant document")
    return RetrievalData(
        corpus_ids=corpus_ids,
        corpus_texts=corpus_texts,
        query_ids=query_ids,
        query_texts=[queries[q] for q in query_ids],
        qrels={q: judged[q] for q in query_ids},
        unjudged_queries=len(queries) - len(query_ids),
    )


def load_reranking(task: Task) -> RetrievalData:
    """Retrieval files plus the candidate list of each query (only those are ranked)."""
    folder = task.path
    corpus_ids, corpus_texts, queries, qrels = _read_judged_folder(folder)
    known = set(corpus_ids)
    path = folder / "candidates.jsonl"
    candidates: dict[str, list[str]] = {}
    for number, row in iter_jsonl(_need(path)):
        query_id = _string_field(path, number, row, "query-id")
        if query_id not in queries:
            raise InputError(f"{path}:{number}: query-id {query_id!r} is not in queries.jsonl")
        if query_id in candidates:
            raise InputError(f"{path}:{number}: query-id {query_id!r} is listed twice")
        items = row.get("candidates")
        if not isinstance(items, list) or not items:
            raise InputError(f"{path}:{number}: 'candidates' must be a non-empty list of corpus ids")
        ids = []
        for item in items:
            doc_id = str(item) if isinstance(item, (str, int)) and not isinstance(item, bool) else None
            if doc_id is None or doc_id not in known:
                raise InputError(f"{path}:{number}: candidate {item!r} is not in corpus.jsonl")
            ids.append(doc_id)
        if len(set(ids)) != len(ids):
            raise InputError(f"{path}:{number}: candidate list has duplicate ids")
        candidates[query_id] = ids
    if not candidates:
        raise InputError(f"{path}: no candidate lists")
    query_ids = list(candidates)
    return RetrievalData(
        corpus_ids=corpus_ids,
        corpus_texts=corpus_texts,
        query_ids=query_ids,
        query_texts=[queries[q] for q in query_ids],
        qrels={q: {d: g for d, g in qrels.get(q, {}).items() if g > 0} for q in query_ids},
        unjudged_queries=len(queries) - len(query_ids),
        candidates=candidates,
    )


# ----------------------------------------------------------------------------------------------- pairs
def _pair_rows(task: Task) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Rows of `pairs.jsonl` in the task's subset and evaluation split."""
    path = _need(task.path / (task.file or "pairs.jsonl"))
    rows = [(n, r) for n, r in iter_jsonl(path) if _matches(r, task.filters)]
    if task.split is not None:
        chosen = [(n, r) for n, r in rows if r.get("split") == task.split]
        if not chosen:
            raise InputError(f"{path}: no rows with split {task.split!r}{_subset_text(task)}")
    elif any(r.get("split") == "test" for _, r in rows):
        chosen = [(n, r) for n, r in rows if r.get("split") == "test"]
    else:
        chosen = [(n, r) for n, r in rows if r.get("split") != "train"]
    if not chosen:
        raise InputError(f"{path}: no evaluation rows{_subset_text(task)}")
    for number, row in chosen:
        yield path, number, row


def _subset_text(task: Task) -> str:
    return f" for {dict(task.filters)}" if task.filters else ""


def _number(path: Path, number: int, row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        problem = "missing" if value is None else f"{value!r}, not a number"
        raise InputError(f"{path}:{number}: field {key!r} is {problem}")
    return float(value)


def load_sts(task: Task) -> PairData:
    data = PairData([], [], [])
    for path, number, row in _pair_rows(task):
        data.sentence1.append(_string_field(path, number, row, "sentence1"))
        data.sentence2.append(_string_field(path, number, row, "sentence2"))
        data.gold.append(_number(path, number, row, "score"))
    return data


def load_pair_classification(task: Task) -> PairData:
    """Pairs with a 0/1 label (`label_field`, default `binary_label` if present else `label`); null labels skipped."""
    data = PairData([], [], [])
    for path, number, row in _pair_rows(task):
        key = task.label_field or ("binary_label" if "binary_label" in row else "label")
        label = row.get(key)
        if label is None:
            if key in row:
                continue  # explicitly unlabelled for the binary task (e.g. OCNLI neutral)
            raise InputError(f"{path}:{number}: field {key!r} is missing")
        if isinstance(label, bool):
            label = int(label)
        if label not in (0, 1):
            raise InputError(
                f"{path}:{number}: field {key!r} must be 0 or 1 for pair classification, got {label!r}"
            )
        data.sentence1.append(_string_field(path, number, row, "sentence1"))
        data.sentence2.append(_string_field(path, number, row, "sentence2"))
        data.gold.append(float(label))
    if len(set(data.gold)) < 2:
        raise InputError(f"{task.path / 'pairs.jsonl'}: pair classification needs both labels 0 and 1")
    return data


def load_bitext(task: Task) -> PairData:
    """Aligned translations: `sentence1` (the other language) → `sentence2` (its translation); gold = same row."""
    data = PairData([], [], [])
    for path, number, row in _pair_rows(task):
        data.sentence1.append(_string_field(path, number, row, "sentence1"))
        data.sentence2.append(_string_field(path, number, row, "sentence2"))
        data.gold.append(float(len(data.gold)))
    return data


# ----------------------------------------------------------------------------------------------- labelled texts
def _label(path: Path, number: int, row: Mapping[str, Any], key: str = "label") -> Any:
    value = row.get(key)
    if value is None or isinstance(value, (list, dict)) or (isinstance(value, float) and value != value):
        problem = "missing" if value is None else f"{value!r}, not a single label"
        raise InputError(f"{path}:{number}: field {key!r} is {problem}")
    return value


def _labelled(task: Task, path: Path, text_field: str) -> tuple[list[str], list[Any]]:
    texts: list[str] = []
    labels: list[Any] = []
    for number, row in iter_jsonl(_need(path)):
        if not _matches(row, task.filters):
            continue
        texts.append(_string_field(path, number, row, text_field))
        labels.append(_label(path, number, row, task.label_field or "label"))
    if not texts:
        raise InputError(f"{path}: no rows{_subset_text(task)}")
    kinds = {type(label) for label in labels}
    if len(kinds) > 1:
        raise InputError(f"{path}: labels mix types {sorted(k.__name__ for k in kinds)}; use one type")
    return texts, labels


def load_classification(task: Task) -> ClassificationData:
    train_texts, train_labels = _labelled(task, task.path / "train.jsonl", task.text_field)
    test_texts, test_labels = _labelled(task, task.path / "test.jsonl", task.text_field)
    if len(set(train_labels)) < 2:
        raise InputError(f"{task.path / 'train.jsonl'}: classification needs at least two labels")
    return ClassificationData(train_texts, train_labels, test_texts, test_labels)


def load_clustering(task: Task) -> ClusteringData:
    texts, labels = _labelled(task, task.path / (task.file or "clusters.jsonl"), task.text_field)
    if len(set(labels)) < 2:
        raise InputError(
            f"{task.path / (task.file or 'clusters.jsonl')}: clustering needs at least two labels"
        )
    return ClusteringData(texts, [str(label) for label in labels])


LOADERS = {
    TaskType.RETRIEVAL: load_retrieval,
    TaskType.RERANKING: load_reranking,
    TaskType.STS: load_sts,
    TaskType.PAIR_CLASSIFICATION: load_pair_classification,
    TaskType.BITEXT: load_bitext,
    TaskType.CLASSIFICATION: load_classification,
    TaskType.CLUSTERING: load_clustering,
}


def load_task(task: Task) -> Any:
    """The task's data, by type."""
    return LOADERS[task.type](task)
