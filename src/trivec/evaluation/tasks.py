"""The task registry: every evaluation set under a data directory, with its type, languages and protocol.

A task is one folder in the layouts of `shared/data/README.md` (task name = folder name). Folders whose rows
carry a `lang` field are split into one task per language (`stsb-multi-mt-de`, `tatoeba-bitext-deu`,
`amazon-counterfactual-ja`); `semeval-sts` is split per year like MTEB's STS12–STS16; folders that hold two
kinds of data (`banking77`: classification + `clusters.jsonl`) give a second task with a suffix. Folders that
hold training data only are not tasks. Any folder in the same layouts elsewhere on disk becomes a task with
`task_from_dir` (its type inferred from the files, or given).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.io import iter_jsonl


class TaskType(str, Enum):
    """The seven C-MTEB / MTEB task types."""

    RETRIEVAL = "retrieval"
    RERANKING = "reranking"
    STS = "sts"
    PAIR_CLASSIFICATION = "pair-classification"
    CLASSIFICATION = "classification"
    CLUSTERING = "clustering"
    BITEXT = "bitext"

    def __str__(self) -> str:
        return self.value


MAIN_SCORE: dict[TaskType, str] = {
    TaskType.RETRIEVAL: "ndcg_at_10",
    TaskType.RERANKING: "map",
    TaskType.STS: "cosine_spearman",
    TaskType.PAIR_CLASSIFICATION: "max_ap",
    TaskType.CLASSIFICATION: "accuracy",
    TaskType.CLUSTERING: "v_measure",
    TaskType.BITEXT: "f1",
}

# fmt: off
# ISO 639-3 (Tatoeba) → ISO 639-1 where one exists; yue (Cantonese) is filed under zh like C-MTEB does.
ISO3_TO_ISO1: dict[str, str] = {
    "ara": "ar", "ben": "bn", "bul": "bg", "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el",
    "eng": "en", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hun": "hu", "ind": "id", "ita": "it",
    "jpn": "ja", "kor": "ko", "nld": "nl", "nob": "nb", "pes": "fa", "pol": "pl", "por": "pt", "ron": "ro",
    "rus": "ru", "spa": "es", "swe": "sv", "swh": "sw", "tam": "ta", "tel": "te", "tha": "th", "tur": "tr",
    "ukr": "uk", "urd": "ur", "vie": "vi", "yue": "zh", "zsm": "ms",
}
# fmt: on


@dataclass(frozen=True)
class Task:
    """One evaluation task: where its files are and how it is scored.

    `filters` selects rows of a shared file (`{"lang": "de"}`, `{"year": 2012}`); `split` is the evaluation
    split of `pairs.jsonl` (None = `test` if present, else every non-train row); `file` / `text_field`
    override the default file and text column; `samples_per_label` / `n_experiments` are the MTEB
    classification protocol; `max_documents` caps clustering documents by a stratified subsample
    (C-MTEB `.v2`: 2048).
    """

    name: str
    type: TaskType
    path: Path
    languages: tuple[str, ...] = ("en",)
    main_score: str = ""
    filters: Mapping[str, Any] = field(default_factory=dict)
    split: str | None = None
    file: str | None = None
    text_field: str = "text"
    label_field: str | None = None
    samples_per_label: int = 8
    n_experiments: int = 10
    max_documents: int | None = 2048
    description: str = ""

    def __post_init__(self) -> None:
        if not self.main_score:
            object.__setattr__(self, "main_score", MAIN_SCORE[self.type])

    @property
    def language(self) -> str:
        """The language of the texts to search (queries and corpus) — what BM25 tokenises."""
        return self.languages[0]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (for results files)."""
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "path": str(self.path),
            "languages": list(self.languages),
            "main_score": self.main_score,
        }
        if self.filters:
            out["filters"] = dict(self.filters)
        if self.split:
            out["split"] = self.split
        if self.file:
            out["file"] = self.file
        if self.text_field != "text":
            out["text_field"] = self.text_field
        if self.type == TaskType.CLASSIFICATION:
            out["samples_per_label"] = self.samples_per_label
            out["n_experiments"] = self.n_experiments
        if self.type == TaskType.CLUSTERING:
            out["max_documents"] = self.max_documents
        return out


# ----------------------------------------------------------------------------------------------- built-ins
# Folder name → how its tasks are made. Anything not listed here is inferred from its files.
_C_MTEB_CLASSIFICATION = {"samples_per_label": 32, "n_experiments": 10}

_BUILTIN: dict[str, list[dict[str, Any]]] = {
    "vaswani-npl": [{"type": TaskType.RETRIEVAL, "languages": ("en",)}],
    "cranfield": [{"type": TaskType.RETRIEVAL, "languages": ("en",)}],
    "cacm": [{"type": TaskType.RETRIEVAL, "languages": ("en",)}],
    "lisa": [{"type": TaskType.RETRIEVAL, "languages": ("en",)}],
    "cmrc2018-trial-retrieval": [{"type": TaskType.RETRIEVAL, "languages": ("zh",)}],
    "trecqa": [{"type": TaskType.RERANKING, "languages": ("en",)}],
    "stsb-multi-mt": [{"type": TaskType.STS, "split_by": "lang", "split": "test"}],
    "semeval-sts": [{"type": TaskType.STS, "languages": ("en",), "split_by": "year", "split": "test"}],
    "sick": [{"type": TaskType.STS, "languages": ("en",), "split": "test", "description": "SICK-R"}],
    "stsb-zh-cnsd": [{"type": TaskType.STS, "languages": ("zh",), "split": "test"}],
    "mrpc": [{"type": TaskType.PAIR_CLASSIFICATION, "languages": ("en",), "split": "test"}],
    # C-MTEB scores its pair-classification tasks (Ocnli, Cmnli) by max accuracy
    "ocnli": [
        {
            "type": TaskType.PAIR_CLASSIFICATION,
            "languages": ("zh",),
            "label_field": "binary_label",
            "main_score": "max_accuracy",
        }
    ],
    "bustm": [
        {
            "type": TaskType.PAIR_CLASSIFICATION,
            "languages": ("zh",),
            "split": "test",
            "main_score": "max_accuracy",
        }
    ],
    "tatoeba-bitext": [{"type": TaskType.BITEXT, "split_by": "lang"}],
    "banking77": [
        {"type": TaskType.CLASSIFICATION, "languages": ("en",), "samples_per_label": 8},
        {
            "type": TaskType.CLUSTERING,
            "languages": ("en",),
            "suffix": "-clustering",
            "file": "clusters.jsonl",
        },
    ],
    "amazon-counterfactual": [
        {"type": TaskType.CLASSIFICATION, "split_by": "lang", "samples_per_label": 32, "n_experiments": 10}
    ],
    "tnews": [{"type": TaskType.CLASSIFICATION, "languages": ("zh",), **_C_MTEB_CLASSIFICATION}],
    "iflytek": [
        {"type": TaskType.CLASSIFICATION, "languages": ("zh",), "samples_per_label": 32, "n_experiments": 5}
    ],
    "eprstmt": [{"type": TaskType.CLASSIFICATION, "languages": ("zh",), **_C_MTEB_CLASSIFICATION}],
    "waimai": [{"type": TaskType.CLASSIFICATION, "languages": ("zh",), **_C_MTEB_CLASSIFICATION}],
    "online-shopping": [
        {"type": TaskType.CLASSIFICATION, "languages": ("zh",), **_C_MTEB_CLASSIFICATION},
        {
            "type": TaskType.CLUSTERING,
            "languages": ("zh",),
            "suffix": "-clustering",
            "file": "clusters.jsonl",
        },
    ],
    "chnsenticorp-htl": [{"type": TaskType.CLASSIFICATION, "languages": ("zh",), **_C_MTEB_CLASSIFICATION}],
    "agnews-clustering": [
        {"type": TaskType.CLUSTERING, "languages": ("en",)},
        {"type": TaskType.CLUSTERING, "languages": ("en",), "suffix": "-p2p", "text_field": "text_p2p"},
    ],
    "csldcp-clustering": [{"type": TaskType.CLUSTERING, "languages": ("zh",)}],
    "thucnews-titles-clustering": [{"type": TaskType.CLUSTERING, "languages": ("zh",)}],
}

# Split-by field → language mapping of its values.
_LANG_ALIASES = {"en-ext": "en"}


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


def _expand(folder: Path, spec: Mapping[str, Any], name: str | None = None) -> list[Task]:
    """Turn one registry entry into tasks (one per value of `split_by`, if any)."""
    spec = dict(spec)
    split_by = spec.pop("split_by", None)
    suffix = spec.pop("suffix", "")
    base = (name or folder.name) + suffix
    if split_by is None:
        return [Task(name=base, path=folder, **spec)]
    tasks = []
    for value in _distinct_values(_data_file(folder, spec["type"], spec.get("file")), split_by):
        if split_by == "lang":
            code = str(value)
            lang = ISO3_TO_ISO1.get(code, _LANG_ALIASES.get(code, code))
            languages: tuple[str, ...] = (lang, "en") if spec["type"] == TaskType.BITEXT else (lang,)
            extra: dict[str, Any] = {"languages": languages}
        else:
            extra = {}
        tasks.append(
            Task(name=f"{base}-{value}", path=folder, filters={split_by: value}, **{**spec, **extra})
        )
    return tasks


def builtin_tasks(data_dir: str | os.PathLike[str] | None = None) -> list[Task]:
    """Every task under `data_dir` (default: `default_data_dir()`), sorted by type then name."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if not root.is_dir():
        raise InputError(f"{root}: data directory not found (set TRIVEC_SHARED or pass --data-dir)")
    tasks: list[Task] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name in _BUILTIN:
            for spec in _BUILTIN[folder.name]:
                tasks.extend(_expand(folder, spec))
            continue
        try:
            tasks.extend(task_from_dir(folder, expand=True))
        except InputError:
            continue  # training data or an unknown layout: not a task
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
    """Tasks of a folder anywhere on disk (same layouts as the shared data); one per `lang` value if rows have one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: task directory not found")
    kind = TaskType(task_type) if task_type is not None else infer_task_type(folder)
    spec: dict[str, Any] = {"type": kind}
    if kind in (TaskType.STS, TaskType.PAIR_CLASSIFICATION):
        spec["split"] = None
    data_file = _data_file(folder, kind, None)
    if not data_file.is_file():
        raise InputError(f"{folder}: {data_file.name} is missing for a {kind.value} task")
    if expand and kind in (
        TaskType.STS,
        TaskType.PAIR_CLASSIFICATION,
        TaskType.BITEXT,
        TaskType.CLASSIFICATION,
    ):
        first = next(iter_jsonl(data_file), None)
        if first is not None and "lang" in first[1]:
            spec["split_by"] = "lang"
    if "split_by" not in spec:
        spec["languages"] = (language or guess_language(folder, kind),)
    elif language:
        spec["languages"] = (language,)
    return _expand(folder, spec, name=name)


def guess_language(folder: Path, kind: TaskType) -> str:
    """'zh' when most characters of the first texts are CJK ideographs, else 'en' (only picks the BM25 tokeniser)."""
    path = _data_file(folder, kind, None)
    if kind == TaskType.RERANKING:
        path = folder / "corpus.jsonl"
    sample: list[str] = []
    for count, (_, row) in enumerate(iter_jsonl(path)):
        sample.extend(str(v) for k, v in row.items() if k in ("text", "title", "sentence1", "sentence2"))
        if count >= 200:
            break
    text = "".join(sample)
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff")
    return "zh" if cjk / len(letters) > 0.3 else "en"


# ----------------------------------------------------------------------------------------------- selection
def select_tasks(
    names: str | Sequence[str] | None,
    available: Sequence[Task],
    languages: Iterable[str] | None = None,
) -> list[Task]:
    """Tasks named by `names`: `all`, task names, folder names (all their tasks) or `type:<task type>`.

    `languages` keeps only tasks whose languages all lie in the set (`en,zh` keeps `tatoeba-bitext-cmn`, not
    `tatoeba-bitext-deu`). Unknown names raise `InputError` with the closest matches.
    """
    if names is None:
        items = ["all"]
    elif isinstance(names, str):
        items = [n.strip() for n in names.split(",") if n.strip()]
    else:
        items = [str(n).strip() for n in names]
    if not items:
        raise InputError("no task given; use --tasks all or a comma-separated list of task names")
    by_name = {t.name: t for t in available}
    chosen: dict[str, Task] = {}
    for item in items:
        if item == "all":
            matched = list(available)
        elif item.startswith("type:"):
            try:
                kind = TaskType(item.split(":", 1)[1])
            except ValueError:
                kinds = ", ".join(t.value for t in TaskType)
                raise InputError(f"unknown task type in {item!r}; expected one of {kinds}") from None
            matched = [t for t in available if t.type == kind]
        elif item in by_name:
            matched = [by_name[item]]
        else:
            matched = [t for t in available if t.path.name == item]
            if not matched:
                pool = sorted(set(by_name) | {t.path.name for t in available})
                close = difflib.get_close_matches(item, pool, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else "; see `trivec eval --list-tasks`"
                raise InputError(f"unknown task {item!r}{hint}")
        for task in matched:
            chosen.setdefault(task.name, task)
    result = list(chosen.values())
    if languages is not None:
        wanted = {lang.strip() for lang in languages if lang.strip()}
        result = [t for t in result if set(t.languages) <= wanted]
    return result


def with_overrides(task: Task, **changes: Any) -> Task:
    """A copy of `task` with fields changed (e.g. `max_documents=None`)."""
    return replace(task, **changes)
