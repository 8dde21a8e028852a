"""Combining per-mode scores of one candidate set: weighted mean (the reference's hybrid), RRF or z-scores.

Weighted fusion is `trivec.inference.scoring.hybrid_scores` (Σ w_m·s_m / Σ w_m over the modes present), so
a hybrid search score is the very number `Embedder.score` gives for the pair. Reciprocal-rank fusion ranks
the candidates per mode and sums `w_m / (k + rank_m)`; it ignores score scales (Cormack et al., 2009).
Z-score fusion standardises each mode's scores over the candidates (minus their mean, over their standard
deviation) before the weighted mean: scale-free like RRF, but a clear winner in one mode keeps its margin.
It matters where a mode's score spread changes with the text: m3-small's lexical scores spread 2.6–5.5× wider
on English than on the languages its sparse head was trained on (docs/m3-small.md measures it).
Auto fusion keeps the weighted mean where the weights were chosen and standardises elsewhere: a model may
record, per mode, the range of per-query score spreads seen on the sets its weights were chosen on
(`fusion_spreads` in its `trivec_config.json`, measured over the dense top 100 ∪ sparse top 100); a query
whose fused modes all spread within their ranges (over the same sample of its candidates) is fused by the
weighted mean, any other by z-scores.
The first-place vote (`+vote` after any method: `auto+vote`, …) runs after fusion: a candidate that a strict
majority of the fused modes rank first — two of three — is ranked first (`first_place_vote`). Fusion sums
evidence, so one mode's large margin can outvote two modes that agree; m3-small's lexical mode does that on
questions that share no word with their paragraph (docs/m3-small.md measures it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trivec.errors import InputError
from trivec.inference.scoring import MODES, hybrid_scores

# the names are defined with the model (a model may name its own fusion); re-exported here with the fusions
from trivec.models.weights import FUSIONS as FUSIONS
from trivec.models.weights import NO_SPREADS, VOTE, split_fusion
from trivec.models.weights import FusionMethod as FusionMethod
from trivec.models.weights import SpreadRanges as SpreadRanges
from trivec.models.weights import check_fusion as check_fusion
from trivec.models.weights import check_spread_ranges as check_spread_ranges

RRF_K = 60
SPREAD_DEPTH = 100  # auto fusion measures spreads over the dense / sparse top 100 (`spread_sample`)


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


def spread(scores: np.ndarray) -> float:
    """Standard deviation of the finite scores (0 when none): how far apart a mode tells the candidates."""
    values = np.asarray(scores, dtype=np.float64)
    kept = values[np.isfinite(values)]
    return float(kept.std()) if kept.size else 0.0


def spread_sample(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Positions of the candidates a spread is measured over: those in the dense top `SPREAD_DEPTH` or the
    sparse top `SPREAD_DEPTH` with a positive score (all when neither mode is given). That is a search's
    default candidate set, and the one auto fusion's ranges are calibrated over, so a deeper candidate set
    (more candidates, an evaluation's 1,000) is judged on the same sample."""
    n = len(next(iter(scores.values()))) if scores else 0
    parts = []
    if "dense" in scores:
        parts.append(top_k(np.nan_to_num(np.asarray(scores["dense"], np.float64), nan=-np.inf), SPREAD_DEPTH))
    if "sparse" in scores:
        sparse = np.asarray(scores["sparse"], dtype=np.float64)
        best = top_k(np.nan_to_num(sparse, nan=-np.inf), SPREAD_DEPTH)
        parts.append(best[sparse[best] > 0])
    if not parts:
        return np.arange(n)
    return np.unique(np.concatenate(parts))


def query_spreads(scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per mode, the spread (`spread`) of a query's candidates over `spread_sample`."""
    sample = spread_sample(scores)
    return {mode: spread(np.asarray(values)[sample]) for mode, values in scores.items()}


def within_spreads(
    scores: Mapping[str, np.ndarray], weights: Mapping[str, float], ranges: SpreadRanges
) -> bool:
    """Whether every fused mode (positive weight) spreads its candidates within its calibrated range."""
    fused = {m: v for m, v in scores.items() if weights.get(m, 0.0) > 0}
    spreads = query_spreads(fused)
    return all(m in ranges and ranges[m][0] <= spreads[m] <= ranges[m][1] for m in fused)


def standardised(scores: np.ndarray) -> np.ndarray:
    """(s − mean) / std over the candidates; all 0 when they score alike. A non-finite score stays non-finite
    (NaN), as the weighted mean passes it on; the other candidates are standardised among themselves."""
    values = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(values)
    kept = values[finite]
    standard = np.where(finite, 0.0, np.nan)
    deviation = spread(values)
    # equal scores leave a rounding residue (std([0.05] * 3) ≈ 7e-18): below 1e-9 of their size, none
    if deviation > 1e-9 * max(1.0, float(np.abs(kept).max(initial=0.0))):
        standard[finite] = (kept - kept.mean()) / deviation
    return standard


def applied_fusion(
    scores: Mapping[str, np.ndarray],
    method: str = "weighted",
    weights: Mapping[str, float] | None = None,
    spread_ranges: SpreadRanges | None = None,
) -> str | None:
    """The fusion `fuse` applies to these scores: `method`, with `auto` resolved for this query to
    `weighted` (every fused mode spreads within its range) or `zscore` (`+vote` kept: `auto+vote` →
    `zscore+vote`); None when a single mode is returned as it is. Reported with each search's hits, since the
    scores' scale depends on it."""
    base, vote = split_fusion(method)
    present = [m for m in MODES if m in scores]
    if len(present) == 1 and (weights is None or weights.get(present[0], 0.0) > 0):
        return None
    if base != "auto":
        return method
    if weights is None:
        raise InputError("auto fusion needs weights")
    if spread_ranges is None:
        raise InputError(NO_SPREADS)
    chosen = "weighted" if within_spreads(scores, weights, spread_ranges) else "zscore"
    return chosen + VOTE if vote else chosen


def fuse(
    scores: Mapping[str, np.ndarray],
    method: str = "weighted",
    weights: Mapping[str, float] | None = None,
    rrf_k: int = RRF_K,
    spread_ranges: SpreadRanges | None = None,
) -> np.ndarray:
    """Fused score per candidate (float64), by `applied_fusion`'s method. A single mode is returned as it is.
    `spread_ranges`: the model's calibrated spreads, which `auto` fusion needs."""
    return fuse_by(applied_fusion(scores, method, weights, spread_ranges), scores, weights, rrf_k)


def fuse_by(
    applied: str | None,
    scores: Mapping[str, np.ndarray],
    weights: Mapping[str, float] | None = None,
    rrf_k: int = RRF_K,
) -> np.ndarray:
    """`fuse` once its method is known (`applied_fusion`), for a caller that reports the method too."""
    if applied is None:
        return np.asarray(next(scores[m] for m in MODES if m in scores), dtype=np.float64)
    base, vote = split_fusion(applied)
    fused = _fused(base, scores, weights, rrf_k)
    return first_place_vote(fused, scores, weights) if vote else fused


def _fused(
    base: str, scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None, rrf_k: int
) -> np.ndarray:
    if base == "rrf":
        return rrf_scores(scores, weights, rrf_k)
    if weights is None:
        raise InputError(f"{base} fusion needs weights")
    if base == "zscore":
        return zscore_scores(scores, weights)
    try:
        return np.asarray(hybrid_scores(scores, weights), dtype=np.float64)
    except ValueError as exc:  # no mode with a positive weight: bad input, as for the other fusions
        raise InputError(str(exc)) from None


def first_place_vote(
    fused: np.ndarray, scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
) -> np.ndarray:
    """`fused` with the candidate that a strict majority of the fused modes (positive weight; all present
    when `weights` is None) rank first lifted to the first place: its score becomes the next float above the
    best fused score, so score order stays rank order. A mode with no clear first (its best score not finite
    or not above its second: a lexical mode that matches nothing) abstains but still counts in the majority.
    Unchanged when no candidate has a majority, when it is already first, or when its fused score or the best
    one is not finite."""
    fused = np.asarray(fused, dtype=np.float64)
    used = [m for m in MODES if m in scores and (weights is None or weights.get(m, 0.0) > 0)]
    if len(used) < 2 or fused.shape[0] < 2:
        return fused
    firsts = [first for m in used if (first := clear_first(np.asarray(scores[m], np.float64))) is not None]
    if not firsts:
        return fused
    winner, votes = max(((c, firsts.count(c)) for c in set(firsts)), key=lambda cv: cv[1])
    best = int(top_k(np.nan_to_num(fused, nan=-np.inf), 1)[0])
    if 2 * votes <= len(used) or winner == best or not np.isfinite(fused[[best, winner]]).all():
        return fused
    lifted = fused.copy()
    lifted[winner] = np.nextafter(fused[best], np.inf)
    return lifted


def clear_first(scores: np.ndarray) -> int | None:
    """The position of the best score when it is finite and above every other (else None: no first)."""
    order = top_k(np.nan_to_num(scores, nan=-np.inf), 2)
    if order.size == 0 or not np.isfinite(scores[order[0]]):
        return None
    return int(order[0]) if order.size == 1 or scores[order[0]] > scores[order[1]] else None


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
