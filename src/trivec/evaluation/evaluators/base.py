"""What every evaluator shares: settings, the per-task outcome, and which retrieval modes a model can run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from trivec.errors import InputError
from trivec.evaluation.bm25 import Bm25Config
from trivec.evaluation.encoding import TextEncoder
from trivec.evaluation.tasks import Task, TaskType
from trivec.inference.scoring import DEFAULT_WEIGHTS
from trivec.models.weights import split_fusion

# Scoring modes of retrieval and reranking; the other task types use the dense embedding.
RETRIEVAL_MODES: tuple[str, ...] = ("dense", "sparse", "colbert", "dense+sparse", "all", "bm25")
MODEL_MODES = frozenset(RETRIEVAL_MODES) - {"bm25"}
# The model outputs each model mode scores with; a hybrid fuses more than one.
HYBRID_PARTS: dict[str, list[str]] = {
    "dense": ["dense"],
    "sparse": ["sparse"],
    "colbert": ["colbert"],
    "dense+sparse": ["dense", "sparse"],
    "all": ["dense", "sparse", "colbert"],
}
HYBRID_MODES = tuple(mode for mode, parts in HYBRID_PARTS.items() if len(parts) > 1)  # dense+sparse, all
MODE_ALIASES = {"sparse+dense": "dense+sparse", "colbert+sparse+dense": "all", "hybrid": "all"}


def parse_modes(modes: str | Iterable[str] | None) -> tuple[str, ...]:
    """Modes in canonical order; `None` means every mode. Unknown names raise `InputError`."""
    if modes is None:
        return RETRIEVAL_MODES
    items = (
        [m.strip() for m in modes.split(",")] if isinstance(modes, str) else [str(m).strip() for m in modes]
    )
    items = [MODE_ALIASES.get(m, m) for m in items if m]
    unknown = [m for m in items if m not in RETRIEVAL_MODES]
    if unknown:
        raise InputError(
            f"unknown mode(s) {', '.join(unknown)}; expected some of {', '.join(RETRIEVAL_MODES)}"
        )
    if not items:
        raise InputError("no mode given")
    return tuple(m for m in RETRIEVAL_MODES if m in items)


def parse_mode(mode: str, role: str = "mode") -> str:
    """One mode in its canonical name, aliases read as `parse_modes` reads them (`hybrid` is `all`), so an
    option naming one mode takes what `--modes` takes; `InputError` naming `role` otherwise."""
    name = MODE_ALIASES.get(mode.strip(), mode.strip())
    if name not in RETRIEVAL_MODES:
        raise InputError(
            f"unknown {role} {mode!r}; expected one of {', '.join(RETRIEVAL_MODES)} "
            f"(or {', '.join(MODE_ALIASES)})"
        )
    return name


def mode_requirement(mode: str, has_sparse: bool, has_colbert: bool) -> str | None:
    """Why the model cannot run `mode` (None when it can): a head one of its parts needs is missing."""
    heads = {"sparse": ("sparse", has_sparse), "colbert": ("ColBERT", has_colbert)}
    missing = [heads[p][0] for p in HYBRID_PARTS.get(mode, []) if p in heads and not heads[p][1]]
    return f"model has no {' or '.join(missing)} head" if missing else None


def hybrid_fusion(result: Mapping[str, Any]) -> str | None:
    """How the hybrid modes of one `trivec eval` result were fused (`weighted` where its settings name none:
    only another fusion is recorded), or None when it scored no hybrid mode."""
    if not set(HYBRID_MODES) & set(result["main_score"]["values"]):
        return None
    return str(result.get("settings", {}).get("fusion", "weighted"))


@dataclass
class EvalSettings:
    """How tasks are scored: modes, hybrid weights and fusion, prompts, search depths, seed.

    prompts: texts put before the queries / documents of retrieval and reranking tasks instead of the model's
    prompts of those roles (`{"query": ..., "document": ...}`, either may be absent).
    """

    modes: tuple[str, ...] = RETRIEVAL_MODES
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    fusion: str = "weighted"  # how hybrids combine their modes' scores (`trivec.retrieval.fusion.FUSIONS`)
    spreads: dict[str, tuple[float, float]] | None = None  # `auto` fusion's calibrated spreads (the model's)
    prompts: dict[str, str] = field(default_factory=dict)
    top_k: int = 1000
    rerank_k: int = 100
    seed: int = 42
    bm25: Bm25Config = field(default_factory=Bm25Config)
    clustering_rounds: int = 10
    clustering_sample_size: int = 16_384
    clustering_batch_size: int = 512

    def public(self) -> dict[str, Any]:
        return {
            "modes": list(self.modes),
            "weights": dict(self.weights),
            **({"fusion": self.fusion} if self.fusion != "weighted" else {}),  # results before it: weighted
            **(
                {"fusion_spreads": {m: list(r) for m, r in self.spreads.items()}}
                if split_fusion(self.fusion)[0] == "auto" and self.spreads
                else {}
            ),
            "top_k": self.top_k,
            "rerank_k": self.rerank_k,
            "seed": self.seed,
        }


@dataclass
class TaskScores:
    """One task's outcome: metrics per mode, modes skipped (with the reason), counts and protocol notes, and
    (retrieval, reranking) the main metric of every scored query per mode, for paired comparisons
    (`trivec.evaluation.significance`): `{mode: {query id: value}}`."""

    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)


class Evaluator(ABC):
    """Scores one task type; subclasses hold the protocol, `trivec.evaluation.metrics` the formulas."""

    task_type: ClassVar[TaskType]

    def __init__(self, settings: EvalSettings) -> None:
        self.settings = settings

    @abstractmethod
    def evaluate(self, task: Task, data: Any, encoder: TextEncoder | None) -> TaskScores:
        """Score `task` on its loaded `data`; `encoder` is None when no mode needs the model."""

    def needs_model(self) -> bool:
        """Whether this evaluator needs an encoder under the current settings."""
        return "dense" in self.settings.modes


class DenseOnlyEvaluator(Evaluator):
    """Task types scored on the dense embedding only (STS, pairs, classification, clustering, bitext)."""

    def evaluate(self, task: Task, data: Any, encoder: TextEncoder | None) -> TaskScores:
        if "dense" not in self.settings.modes or encoder is None:
            return TaskScores(
                skipped={"dense": f"{task.type.value} tasks are scored on the dense embedding only"}
            )
        return self.score(task, data, encoder)

    @abstractmethod
    def score(self, task: Task, data: Any, encoder: TextEncoder) -> TaskScores:
        """Score with the dense embedding."""
