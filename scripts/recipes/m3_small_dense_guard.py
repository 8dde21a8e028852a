"""Would leaving a query to dense when dense is sure of it keep `all` above dense? Measured on the validation
cuts of the training folders — never an evaluation set.

    python scripts/recipes/m3_small_dense_guard.py --on build/m3-small-val-v8 --on build/m3-small-val-v8-cut2

Where dense is near its ceiling (TyDi QA Indonesian, ParsiNLU Persian: dense 97.5–97.9) the fused `all` can
lose a question that dense ranks right. A dense-first guard keeps dense's first candidate first whenever the
fusion would move it, under one of these rules (everything below the first place stays the fusion's):

- `margin τ`: dense's first score is at least τ above its second (cosine; how sure dense is);
- `relative τ`: that margin is at least τ standard deviations of dense's scores over the candidates;
- `both agree`: unless the sparse and ColBERT modes both rank the fusion's first candidate first;
- `colbert agrees`: unless ColBERT ranks the fusion's first candidate first.

Each set is fused as `trivec eval` fuses it (the model's method, its calibrated spreads, the weights of the
set's language). Printed per cut: each set's dense nDCG@10 × 100 and, per rule, `all` − dense.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m3_small_language_weights import scored_sets
from m3_small_weights import ScoredSet, ndcg_at_10

from trivec import Embedder
from trivec.models.weights import FusionDefaults
from trivec.retrieval.fusion import fuse

Parts = dict[str, np.ndarray]
Guard = Callable[[Parts, int], bool]  # (a query's scores, the fusion's first) → keep dense's first first


def best(scores: np.ndarray) -> int:
    return int(np.argsort(-np.asarray(scores, np.float64), kind="stable")[0])


def dense_margin(parts: Parts) -> float:
    top = np.sort(np.asarray(parts["dense"], np.float64))[::-1]
    return float(top[0] - top[1]) if top.size > 1 else float("inf")


def sure_by(tau: float, relative: bool) -> Guard:
    """Keep dense's first when its margin is ≥ `tau` (× the std of its scores when `relative`)."""

    def guard(parts: Parts, first: int) -> bool:
        scale = float(np.std(parts["dense"])) if relative else 1.0
        return dense_margin(parts) >= tau * scale

    return guard


def unless_both_agree(parts: Parts, first: int) -> bool:
    return not (best(parts["sparse"]) == first and best(parts["colbert"]) == first)


def unless_colbert_agrees(parts: Parts, first: int) -> bool:
    return best(parts["colbert"]) != first


def never(parts: Parts, first: int) -> bool:
    return False


def guards() -> dict[str, Guard]:
    """The rules, named as the table prints them (`none`: the fusion as it is)."""
    rules: dict[str, Guard] = {"none": never}
    rules |= {f"margin {tau}": sure_by(tau, relative=False) for tau in (0.005, 0.01, 0.02, 0.04)}
    rules |= {f"relative {tau}": sure_by(tau, relative=True) for tau in (0.5, 1.0, 1.5)}
    return rules | {"both agree": unless_both_agree, "colbert agrees": unless_colbert_agrees}


def guarded_ndcg(scored: ScoredSet, defaults: FusionDefaults, guard: Guard) -> np.ndarray:
    """nDCG@10 of each question when `guard` may put dense's first candidate back in first place."""
    values = np.zeros(len(scored.parts))
    for k, (parts, gold) in enumerate(zip(scored.parts, scored.gold, strict=True)):
        fused = fuse(parts, defaults.method, defaults.weights, spread_ranges=defaults.spreads)
        order = np.argsort(-fused, kind="stable")
        dense_first = best(parts["dense"])
        if order[0] != dense_first and guard(parts, int(order[0])):
            order = np.concatenate([[dense_first], order[order != dense_first]])
        values[k] = ndcg_at_10(order, gold)
    return values


def report(embedder: Embedder, folder: Path) -> None:
    rules = guards()
    print(f"\n## {folder}: `all` − dense, nDCG@10 × 100\n")
    print("| set | questions | dense | " + " | ".join(rules) + " |")
    print("|---|---:|---:|" + "---:|" * len(rules))
    gains: dict[str, list[float]] = {name: [] for name in rules}
    for language, scored in scored_sets(embedder, folder, 1).items():
        defaults = embedder.fusion_defaults.for_language(language)
        dense = 100 * scored.per_query(defaults.weights, ("dense",)).mean()
        cells = []
        for name, guard in rules.items():
            gain = 100 * guarded_ndcg(scored, defaults, guard).mean() - dense
            gains[name].append(gain)
            cells.append(f"{gain:+.2f}")
        print(f"| {language} | {len(scored.parts)} | {dense:.2f} | " + " | ".join(cells) + " |", flush=True)
    for label, reduce in (("mean", np.mean), ("lowest", np.min)):
        print(f"| **{label}** | | | " + " | ".join(f"{reduce(g):+.2f}" for g in gains.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--on", type=Path, action="append", required=True, help="a folder of validation sets")
    parser.add_argument("--model", default="m3-small")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    for folder in args.on:
        if not folder.is_dir():
            parser.error(f"{folder}: no such folder of validation sets")
    embedder = Embedder.from_pretrained(args.model, dtype=args.dtype)
    for folder in args.on:
        report(embedder, folder)


if __name__ == "__main__":
    main()
