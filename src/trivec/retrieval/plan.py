"""What one search computes (`SearchPlan`), checked against what the index holds before anything is encoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trivec.errors import InputError, UnsupportedOutputError
from trivec.inference.scoring import MODES, normalize_weights
from trivec.models.weights import FusionDefaults, fusion_to_use

SEARCH_MODES: tuple[str, ...] = ("dense", "sparse", "colbert", "hybrid")


@dataclass
class SearchPlan:
    """What one search computes: its mode, the score modes, their weights and fusion (with `auto` fusion's
    calibrated spreads), and the candidate depth."""

    mode: str
    score_modes: list[str]
    weights: dict[str, float]
    fusion: str
    top_k: int
    candidates: int
    spreads: dict[str, tuple[float, float]] | None = None

    @property
    def first_stage(self) -> list[str]:
        """Lists whose top `candidates` form the candidate set."""
        if self.mode == "dense":
            return ["dense"]
        if self.mode == "sparse":
            return ["sparse"]
        if self.mode == "colbert":
            return ["dense"]
        lists: list[str] = [m for m in ("dense", "sparse") if m in self.score_modes]
        # a hybrid weighing ColBERT alone re-ranks the dense top N, as `colbert` does
        return lists or ["dense"]

    @property
    def needs(self) -> tuple[bool, bool, bool]:
        """(dense, sparse, colbert) query outputs needed."""
        wanted = set(self.score_modes) | set(self.first_stage)
        return "dense" in wanted, "sparse" in wanted, "colbert" in wanted


def check_search_options(
    mode: str, top_k: int, candidates: int | None, weights: Mapping[str, float] | Sequence[float] | None
) -> None:
    """What a search request is checked for before a model or an index is read: the mode's name, `top_k`
    and `candidates` (positive integers), weights that are weights (`plan_search` then checks them against
    the index's modes)."""
    if mode not in SEARCH_MODES:
        raise InputError(f"unknown search mode {mode!r}; expected one of {', '.join(SEARCH_MODES)}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InputError(
            f"top_k must be a positive integer, got {top_k!r}",
            cli=f"--top-k must be a positive integer, got {top_k}",
        )
    if candidates is not None and (
        not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1
    ):
        raise InputError(
            f"candidates must be a positive integer, got {candidates!r}",
            cli=f"--candidates must be a positive integer, got {candidates}",
        )
    if weights is not None:
        try:
            normalize_weights(weights)
        except ValueError as exc:
            raise InputError(str(exc)) from None


def plan_search(
    mode: str,
    available: Sequence[str],
    weights: Mapping[str, float] | Sequence[float] | None,
    fusion: str | None,
    top_k: int,
    candidates: int | None,
    defaults: FusionDefaults | None = None,
) -> SearchPlan:
    """Check a search request against what the index holds; modes it lacks are skipped (hybrid) or refused.
    `defaults`: the model's weights and fusion, used where the request gives none (else M3's 0.4 / 0.2 /
    0.4, weighted)."""
    check_search_options(mode, top_k, candidates, weights)
    defaults = defaults if defaults is not None else FusionDefaults(normalize_weights(None))
    fusion = fusion_to_use(fusion, defaults.method, defaults.spreads, fused=mode == "hybrid")
    depth = max(top_k, candidates if candidates is not None else 100)
    try:
        w = normalize_weights(weights, defaults.weights)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if mode in ("sparse", "colbert") and mode not in available:
        raise UnsupportedOutputError(
            f"this index has no {mode} vectors (the model has no {mode} head, or they were not stored); "
            f"available modes: {', '.join(available)}"
        )
    if mode == "hybrid":
        score_modes = [m for m in MODES if m in available and w.get(m, 0.0) > 0]
        if not score_modes:
            raise InputError(f"every weight of the index's modes ({', '.join(available)}) is 0")
    elif mode == "colbert":
        score_modes = ["colbert"]
        w = {"dense": 0.0, "sparse": 0.0, "colbert": 1.0}
    else:
        score_modes = [mode]
    return SearchPlan(mode, score_modes, w, fusion, top_k, depth, defaults.spreads)
