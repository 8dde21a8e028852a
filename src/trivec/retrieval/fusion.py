"""Combining per-mode scores of one candidate set: weighted mean (the reference's hybrid), RRF or z-scores.

Weighted fusion is `trivec.inference.scoring.hybrid_scores` (Σ w_m·s_m / Σ w_m over the modes present), so
a hybrid search score is the very number `Embedder.score` gives for the pair. Reciprocal-rank fusion ranks
the candidates per mode and sums `w_m / (k + rank_m)`; it ignores score scales (Cormack et al., 2009).
Z-score fusion standardises each mode's scores over the candidates (minus their mean, over their standard
deviation) before the weighted mean: scale-free like RRF, but a clear winner in one mode keeps its margin.
It matters where a mode's score spread changes with the text: m3-small's lexical scores spread 2.6–5.5× wider
on English than on the languages its sparse head was trained on (docs/m3-small.md measures it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import numpy as np

from trivec.errors import InputError
from trivec.inference.scoring import MODES, hybrid_scores

FusionMethod = Literal["weighted", "rrf", "zscore"]
FUSIONS: tuple[str, ...] = get_args(FusionMethod)
RRF_K = 60


def check_fusion(method: str) -> None:
    """Refuse a fusion method trivec does not have (the one check of the name, wherever it is given)."""
    if method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}; expected one of {', '.join(FUSIONS)}")


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` largest values, best first; ties broken by the lower position (deterministic)."""
    n = int(values.shape[0])
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        kth = np.partition(values, n - k)[n - k]
        candidates = np.flatnonzero(values >= kth)
    else:
        candidates = np.arange(n)
    order = np.lexsort((candidates, -values[candidates]))
    return candidates[order][:k].astype(np.int64)


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of every value (highest = 1; ties by position), as RRF needs."""
    order = np.lexsort((np.arange(values.shape[0]), -np.asarray(values, dtype=np.float64)))
    out = np.empty(values.shape[0], dtype=np.int64)
    out[order] = np.arange(1, values.shape[0] + 1)
    return out


def rrf_scores(
    scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None, k: int = RRF_K
) -> np.ndarray:
    """Σ_m w_m / (k + rank_m) over the modes present (w_m = 1 when `weights` is None)."""
    used = [m for m in MODES if m in scores and (weights is None or weights.get(m, 0.0) > 0)]
    if not used:
        raise InputError(f"no mode with a positive weight among the computed scores {sorted(scores)}")
    total = np.zeros(len(scores[used[0]]), dtype=np.float64)
    for mode in used:
        w = 1.0 if weights is None else float(weights[mode])
        total += w / (k + ranks(np.asarray(scores[mode])))
    return total


def zscore_scores(scores: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Σ_m w_m·z_m / Σ w_m over the modes with a positive weight, z_m = (s_m − mean) / std over the candidates
    (a mode whose candidates all score alike adds 0): the weighted mean (`hybrid_scores`) of standardised
    scores."""
    standard = {m: standardised(v) if weights.get(m, 0.0) > 0 else v for m, v in scores.items()}
    try:
        return np.asarray(hybrid_scores(standard, weights), dtype=np.float64)
    except ValueError as exc:  # no mode with a positive weight: bad input, as for the other fusions
        raise InputError(str(exc)) from None


def standardised(scores: np.ndarray) -> np.ndarray:
    """(s − mean) / std over the candidates; all 0 when they score alike. A non-finite score stays non-finite
    (NaN), as the weighted mean passes it on; the other candidates are standardised among themselves."""
    values = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(values)
    kept = values[finite]
    standard = np.where(finite, 0.0, np.nan)
    spread = float(kept.std()) if kept.size else 0.0
    # equal scores leave a rounding residue (std([0.05] * 3) ≈ 7e-18): below 1e-9 of their size, none
    if spread > 1e-9 * max(1.0, float(np.abs(kept).max(initial=0.0))):
        standard[finite] = (kept - kept.mean()) / spread
    return standard


def fuse(
    scores: Mapping[str, np.ndarray],
    method: str = "weighted",
    weights: Mapping[str, float] | None = None,
    rrf_k: int = RRF_K,
) -> np.ndarray:
    """Fused score per candidate (float64). A single mode is returned as it is."""
    check_fusion(method)
    present = [m for m in MODES if m in scores]
    if len(present) == 1 and (weights is None or weights.get(present[0], 0.0) > 0):
        return np.asarray(scores[present[0]], dtype=np.float64)
    if method == "rrf":
        return rrf_scores(scores, weights, rrf_k)
    if weights is None:
        raise InputError(f"{method} fusion needs weights")
    if method == "zscore":
        return zscore_scores(scores, weights)
    return np.asarray(hybrid_scores(scores, weights), dtype=np.float64)


def merge_top_k(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Global top `k` of several `(scores, keys)` lists (e.g. one per segment): `(scores, keys)`, best first.

    Ties are broken by the order of `parts` and then by position, so the merge of per-part top-k lists
    equals the top-k of the concatenation.
    """
    if not parts:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s, _ in parts])
    keys = np.concatenate([np.asarray(key) for _, key in parts])
    best = top_k(scores, k)
    return scores[best], keys[best]
