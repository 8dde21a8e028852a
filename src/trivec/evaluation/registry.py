"""The task registry: every evaluation set under a data directory, with its type, languages and protocol.

A task is one folder in the layouts of `shared/data/README.md` (task name = folder name). The data directory's
`tasks.tsv` (folder, task type, ISO 639-1 languages or `multi`) says which folders are tasks, of what type and in
which languages; folders it lists as `training` are never tasks. trivec adds the protocol of the folders it
knows (`_PROTOCOLS`: splits, classification draws, second tasks). Folders whose rows carry a `lang` field are
split into one task per language (`stsb-multi-mt-de`, `tatoeba-bitext-deu`, `amazon-counterfactual-ja`);
`semeval-sts` is split per year like MTEB's STS12–STS16; folders that hold two kinds of data (`banking77`:
classification + `clusters.jsonl`) give a second task with a suffix. Any folder in the same layouts elsewhere on
disk becomes a task with `task_from_dir` (type inferred from the files, or given; language given, from its rows'
`lang`, or from a `tasks.tsv` beside it — never guessed). The tasks themselves (`Task`, `TaskType`) and
choosing among them by name are `trivec.evaluation.tasks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.evaluation.tasks import Task, TaskType
from trivec.io import iter_jsonl, read_text_file
from trivec.languages import language_code

# ----------------------------------------------------------------------------------------------- protocols
# Folder name → how its tasks are made, beyond the type and languages that `tasks.tsv` gives: evaluation split,
# split per row field, classification draws, a second task from a second file. The first entry's type must be
# the folder's type in `tasks.tsv`. Folders not listed here get the defaults of their type.
_C_MTEB_CLASSIFICATION = {"samples_per_label": 32, "n_experiments": 10}

_PROTOCOLS: dict[str, list[dict[str, Any]]] = {
    "stsb-multi-mt": [{"type": TaskType.STS, "split_by": "lang", "split": "test"}],
    "semeval-sts": [{"type": TaskType.STS, "split_by": "year", "split": "test"}],
    "sick": [{"type": TaskType.STS, "split": "test", "description": "SICK-R"}],
    "stsb-zh-cnsd": [{"type": TaskType.STS, "split": "test"}],
    "mrpc": [{"type": TaskType.PAIR_CLASSIFICATION, "split": "test"}],
    # C-MTEB scores its pair-classification tasks (Ocnli, Cmnli) by max accuracy
    "ocnli": [
        {"type": TaskType.PAIR_CLASSIFICATION, "label_field": "binary_label", "main_score": "max_accuracy"}
    ],
    "bustm": [{"type": TaskType.PAIR_CLASSIFICATION, "split": "test", "main_score": "max_accuracy"}],
    "tatoeba-bitext": [{"type": TaskType.BITEXT, "split_by": "lang"}],
    "banking77": [
        {"type": TaskType.CLASSIFICATION, "samples_per_label": 8},
        {"type": TaskType.CLUSTERING, "suffix": "-clustering", "file": "clusters.jsonl"},
    ],
    "amazon-counterfactual": [
        {"type": TaskType.CLASSIFICATION, "split_by": "lang", "samples_per_label": 32, "n_experiments": 10}
    ],
    "tnews": [{"type": TaskType.CLASSIFICATION, **_C_MTEB_CLASSIFICATION}],
    "iflytek": [{"type": TaskType.CLASSIFICATION, "samples_per_label": 32, "n_experiments": 5}],
    "eprstmt": [{"type": TaskType.CLASSIFICATION, **_C_MTEB_CLASSIFICATION}],
    "waimai": [{"type": TaskType.CLASSIFICATION, **_C_MTEB_CLASSIFICATION}],
    "online-shopping": [
        {"type": TaskType.CLASSIFICATION, **_C_MTEB_CLASSIFICATION},
        {"type": TaskType.CLUSTERING, "suffix": "-clustering", "file": "clusters.jsonl"},
    ],
    "chnsenticorp-htl": [{"type": TaskType.CLASSIFICATION, **_C_MTEB_CLASSIFICATION}],
    "agnews-clustering": [
        {"type": TaskType.CLUSTERING},
        {"type": TaskType.CLUSTERING, "suffix": "-p2p", "text_field": "text_p2p"},
    ],
}

TASK_INDEX = "tasks.tsv"
TRAINING = "training"  # the type `tasks.tsv` gives folders of training data: never evaluation tasks
MULTI = "multi"  # the languages `tasks.tsv` gives folders whose rows carry their own `lang`


def default_data_dir() -> Path:
    """`$TRIVEC_DATA`, else `$TRIVEC_SHARED/data`, else `../shared/data` beside the working directory or the repo."""
    if os.environ.get("TRIVEC_DATA"):
        return Path(os.environ["TRIVEC_DATA"])
    if os.environ.get("TRIVEC_SHARED"):
        return Path(os.environ["TRIVEC_SHARED"]) / "data"
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


# ----------------------------------------------------------------------------------------------- tasks.tsv
@dataclass(frozen=True)
class IndexEntry:
    """One line of `tasks.tsv`: a folder's type (None = training data) and languages (None = `multi`)."""

    folder: str
    type: TaskType | None
    languages: tuple[str, ...] | None
    where: str  # "path:line", for messages


def read_task_index(data_dir: str | os.PathLike[str]) -> dict[str, IndexEntry] | None:
    """`{folder: entry}` from `data_dir/tasks.tsv` (None when there is none); malformed lines name file and line.

    Columns: folder, task type (`retrieval`, `reranking`, `sts`, `pair-classification`, `bitext`,
    `classification`, `clustering`, or `training`), languages (ISO 639-1 codes separated by spaces or commas, or
    `multi`: per-row `lang` fields). A first line starting with `folder` is a header; `#` lines are comments.
    """
    path = Path(data_dir) / TASK_INDEX
    if not path.is_file():
        return None
    lines = read_text_file(path).splitlines()
    kinds = ", ".join([*(t.value for t in TaskType), TRAINING])
    index: dict[str, IndexEntry] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in raw.split("\t")]
        if not index and parts[0].lower() == "folder":
            continue
        where = f"{path}:{number}"
        if len(parts) != 3 or not all(parts):
            raise InputError(
                f"{where}: expected 3 tab-separated fields (folder, type, languages), got {raw!r}"
            )
        folder, type_text, language_text = parts
        if folder in index:
            raise InputError(f"{where}: folder {folder!r} is listed twice (first at {index[folder].where})")
        kind: TaskType | None
        if type_text == TRAINING:
            kind = None
        else:
            try:
                kind = TaskType(type_text)
            except ValueError:
                raise InputError(
                    f"{where}: unknown task type {type_text!r}; expected one of {kinds}"
                ) from None
        codes = language_text.replace(",", " ").split()
        languages: tuple[str, ...] | None
        if codes == [MULTI]:
            languages = None
        else:
            languages = tuple(dict.fromkeys(language_code(code, where) for code in codes))
        index[folder] = IndexEntry(folder, kind, languages, where)
    return index


def _index_entry(folder: Path) -> IndexEntry | None:
    """The `tasks.tsv` line of `folder` in its parent directory, if any."""
    index = read_task_index(folder.parent)
    return index.get(folder.name) if index is not None else None


# ----------------------------------------------------------------------------------------------- registry
def _distinct_values(path: Path, key: str) -> list[Any]:
    seen: dict[Any, None] = {}
    for number, row in iter_jsonl(path):
        if key not in row:
            raise InputError(f"{path}:{number}: field {key!r} is missing (this file is split by {key!r})")
        seen.setdefault(row[key], None)
    return list(seen)


def _data_file(folder: Path, task_type: TaskType, file: str | None) -> Path:
    if file:
        return folder / file
    return (
        folder
        / {
            TaskType.STS: "pairs.jsonl",
            TaskType.PAIR_CLASSIFICATION: "pairs.jsonl",
            TaskType.BITEXT: "pairs.jsonl",
            TaskType.CLASSIFICATION: "test.jsonl",
            TaskType.CLUSTERING: "clusters.jsonl",
            TaskType.RETRIEVAL: "corpus.jsonl",
            TaskType.RERANKING: "candidates.jsonl",
        }[task_type]
    )


def _rows_have_lang(folder: Path, kind: TaskType, file: str | None = None) -> bool:
    """Whether the first row of a folder's text file has a `lang` field (types whose rows can be split)."""
    if kind not in (TaskType.STS, TaskType.PAIR_CLASSIFICATION, TaskType.BITEXT, TaskType.CLASSIFICATION):
        return False
    path = _data_file(folder, kind, file)
    if not path.is_file():
        return False
    first = next(iter_jsonl(path), None)
    return first is not None and "lang" in first[1]


def _no_language(folder: Path, kind: TaskType, where: str | None) -> InputError:
    listed = f" ({where} gives no language)" if where else ""
    rows = (
        ""
        if kind in (TaskType.RETRIEVAL, TaskType.RERANKING, TaskType.CLUSTERING)
        else ", give its rows a 'lang' field"
    )
    return InputError(
        f"{folder}: no language for this {kind.value} task{listed}: pass --language with its ISO 639-1 code "
        f"(e.g. --language ja){rows} or list the folder in a {TASK_INDEX} beside it"
    )


def _expand(
    folder: Path,
    spec: Mapping[str, Any],
    name: str | None = None,
    allowed: tuple[str, ...] | None = None,
    where: str | None = None,
) -> list[Task]:
    """Turn one protocol entry into tasks (one per value of `split_by`, if any); `lang` values must be in `allowed`."""
    spec = dict(spec)
    split_by = spec.pop("split_by", None)
    suffix = spec.pop("suffix", "")
    base = (name or folder.name) + suffix
    if split_by is None:
        return [Task(name=base, path=folder, **spec)]
    data_file = _data_file(folder, spec["type"], spec.get("file"))
    tasks = []
    for value in _distinct_values(data_file, split_by):
        if split_by == "lang":
            lang = language_code(value, f"{data_file} (field 'lang')")
            if allowed is not None and lang not in allowed:
                raise InputError(
                    f"{data_file}: rows in language {value!r} ({lang}), which {where or TASK_INDEX} does not "
                    f"list ({' '.join(allowed)})"
                )
            languages: tuple[str, ...] = (lang, "en") if spec["type"] == TaskType.BITEXT else (lang,)
            extra: dict[str, Any] = {"languages": languages}
        else:
            extra = {}
        tasks.append(
            Task(name=f"{base}-{value}", path=folder, filters={split_by: value}, **{**spec, **extra})
        )
    return tasks


def _registered(
    folder: Path, kind: TaskType, languages: tuple[str, ...] | None, where: str | None
) -> list[Task]:
    """Tasks of a data-directory folder: its protocol (or its type's defaults) with the index's languages."""
    specs = _PROTOCOLS.get(folder.name) or [{"type": kind}]
    if specs[0]["type"] != kind:
        raise InputError(
            f"{where or folder}: {folder.name} is listed as {kind.value}, but trivec evaluates it as "
            f"{specs[0]['type'].value}"
        )
    tasks: list[Task] = []
    for protocol in specs:
        spec = dict(protocol)
        if "split_by" not in spec and _rows_have_lang(folder, spec["type"], spec.get("file")):
            spec["split_by"] = "lang"
        if spec.get("split_by") != "lang":
            if languages is None:
                raise _no_language(folder, spec["type"], where)
            spec["languages"] = languages
        tasks.extend(_expand(folder, spec, allowed=languages, where=where))
    return tasks


def builtin_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[Task]:
    """Every task under `data_dir` (default: `default_data_dir()`), sorted by type then name.

    With a `tasks.tsv` there, its folders are the tasks (`training` ones excepted) with its types and languages.
    Without one, each folder's type comes from trivec's protocol or its files and its languages from its rows'
    `lang` field; a folder in an evaluation layout with no language is an error.
    """
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not root.is_dir():
        raise InputError(f"{root}: data directory not found (set TRIVEC_SHARED or pass --data-dir)")
    index = read_task_index(root)
    tasks: list[Task] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if index is not None:
            entry = index.get(folder.name)
            if entry is None or entry.type is None:
                continue  # not indexed, or training data: not a task
            tasks.extend(_registered(folder, entry.type, entry.languages, entry.where))
        elif folder.name in _PROTOCOLS:
            tasks.extend(_registered(folder, _PROTOCOLS[folder.name][0]["type"], None, None))
        else:
            try:
                kind = infer_task_type(folder)
            except InputError:
                continue  # training data or an unknown layout: not a task
            tasks.extend(task_from_dir(folder, kind))
    order = list(TaskType)
    return sorted(tasks, key=lambda t: (order.index(t.type), t.name))


# ----------------------------------------------------------------------------------------------- inference
def infer_task_type(folder: str | os.PathLike[str]) -> TaskType:
    """The task type of a folder in one of the data layouts; raises `InputError` saying why when unclear."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    have = {p.name for p in folder.iterdir() if p.is_file()}
    retrieval_files = {"corpus.jsonl", "queries.jsonl", "qrels.tsv"}
    if "candidates.jsonl" in have and retrieval_files <= have:
        return TaskType.RERANKING
    if retrieval_files <= have:
        return TaskType.RETRIEVAL
    if "test.jsonl" in have and "train.jsonl" in have:
        return TaskType.CLASSIFICATION
    if "clusters.jsonl" in have:
        return TaskType.CLUSTERING
    if "pairs.jsonl" in have:
        return _infer_pairs_type(folder / "pairs.jsonl")
    partial = retrieval_files & have
    if partial:
        missing = sorted(retrieval_files - have)
        raise InputError(f"{folder}: looks like a retrieval task but {', '.join(missing)} is missing")
    if "train.jsonl" in have:
        raise InputError(f"{folder}: holds training data only (train.jsonl), not an evaluation task")
    raise InputError(
        f"{folder}: no evaluation files found (expected corpus/queries/qrels, candidates.jsonl, "
        "pairs.jsonl, train+test.jsonl or clusters.jsonl)"
    )


def _infer_pairs_type(path: Path) -> TaskType:
    labels: set[Any] = set()
    has_score = has_id = False
    for count, (_, row) in enumerate(iter_jsonl(path)):
        has_score |= isinstance(row.get("score"), (int, float)) and not isinstance(row.get("score"), bool)
        has_id |= "id" in row
        label = row.get("binary_label", row.get("label"))
        if label is not None:
            labels.add(label)
        if count >= 2000:
            break
    if has_score:
        return TaskType.STS
    if labels and labels <= {0, 1}:
        return TaskType.BITEXT if labels <= {1} and has_id else TaskType.PAIR_CLASSIFICATION
    raise InputError(
        f"{path}: cannot tell the task type (rows need a numeric 'score' for STS, a 0/1 'label' for pair "
        "classification, or 'id' + 'label' 1 for bitext); pass the type explicitly"
    )


def task_from_dir(
    folder: str | os.PathLike[str],
    task_type: TaskType | str | None = None,
    *,
    name: str | None = None,
    language: str | None = None,
    expand: bool = True,
) -> list[Task]:
    """Tasks of a folder anywhere on disk (same layouts as the shared data); one per `lang` value if rows have one.

    The type is `task_type`, else the folder's line in a `tasks.tsv` beside it, else inferred from its files. The
    language is `language` (an ISO 639-1 code), else that `tasks.tsv` line's; rows with a `lang` field give one
    task per language instead. No language at all is an `InputError` asking for one (no guessing: scripts are
    shared by many languages). A folder `tasks.tsv` lists as training data is not a task.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: task directory not found")
    explicit = language_code(language, "--language") if language is not None else None
    entry = _index_entry(folder)
    if task_type is not None:
        kind = TaskType.parse(task_type, "--task-type")
    elif entry is not None and entry.type is None:
        raise InputError(f"{folder}: {entry.where} lists it as training data, not an evaluation task")
    elif entry is not None and entry.type is not None:
        kind = entry.type
    else:
        kind = infer_task_type(folder)
    spec: dict[str, Any] = {"type": kind}
    if kind in (TaskType.STS, TaskType.PAIR_CLASSIFICATION):
        spec["split"] = None
    data_file = _data_file(folder, kind, None)
    if not data_file.is_file():
        raise InputError(f"{folder}: {data_file.name} is missing for a {kind.value} task")
    if expand and _rows_have_lang(folder, kind):
        spec["split_by"] = "lang"
        return _expand(folder, spec, name=name)
    indexed = entry.languages if entry is not None else None
    languages = (explicit,) if explicit else indexed
    if not languages:
        raise _no_language(folder, kind, entry.where if entry is not None else None)
    spec["languages"] = languages
    return _expand(folder, spec, name=name)
