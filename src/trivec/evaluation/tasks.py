"""Evaluation tasks: the seven task types, a task's files and protocol (`Task`), and choosing tasks by name.

Where tasks come from — the folders of a data directory and their `tasks.tsv`, or any folder on disk — is
`trivec.evaluation.registry`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from trivec.errors import InputError


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

    @classmethod
    def parse(cls, text: object, where: str = "task type") -> TaskType:
        """`text` as a task type; else an `InputError` saying `where` it came from and naming the types."""
        try:
            return cls(text)
        except ValueError:
            kinds = ", ".join(t.value for t in cls)
            raise InputError(f"{where}: unknown task type {text!r}; expected one of {kinds}") from None


# the types whose queries rank documents: they fuse modes, and their results keep per-query values
RANKING_TYPES: tuple[TaskType, ...] = (TaskType.RETRIEVAL, TaskType.RERANKING)


MAIN_SCORE: dict[TaskType, str] = {
    TaskType.RETRIEVAL: "ndcg_at_10",
    TaskType.RERANKING: "map",
    TaskType.STS: "cosine_spearman",
    TaskType.PAIR_CLASSIFICATION: "max_ap",
    TaskType.CLASSIFICATION: "accuracy",
    TaskType.CLUSTERING: "v_measure",
    TaskType.BITEXT: "f1",
}


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
    languages: tuple[str, ...]
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
        if not self.languages:
            raise InputError(f"{self.path}: task {self.name!r} has no language")
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
            kind = TaskType.parse(item.split(":", 1)[1], f"tasks {item!r}")
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
