"""How far any fusion of a model's three modes can take `all` on a validation set, and how far it could with
a lexical mode as good as BM25 — the bound docs/m3-small.md gives for TyDi QA Indonesian.

    python scripts/recipes/m3_small_lexical_bound.py build/m3-small-val-cut2/tydiqa-id-train [more folders]
        [--model m3-small] [--dtype bfloat16]

Each folder (a validation set written by `m3_small_weights.py`, named after its training folder, which gives
its language) is encoded once; candidates as `trivec eval`'s `all` takes them (dense top 100 ∪ sparse top
100). Printed, nDCG@10 × 100: each mode alone; BM25 (`trivec eval`'s, in the folder's language) on the same
candidates; `all` with M3's weights; the best weighting with a lexical weight of at least 0.05 over the
0.05 grid, weighted and z-score fusion, *picked on the set itself* (a bound, not a setting); the same with
BM25 in place of the learned lexical mode (each query's BM25 scores scaled so that their best is the set's
mean best sparse score: a weight then means what it means for the sparse mode); and a perfect per-query
switch between `all` and dense + ColBERT (the better of the two for each question, known from its answer);
and per-set weights scored honestly, as a per-language setting would be chosen: the best weighted triple
(lexical ≥ 0.05) picked on a random half of the questions and scored on the other half, both ways, over
five halvings.
If even the bounds stay below dense, no fusion setting — fixed or chosen per language — can lift `all`
over dense on that set, and neither could a lexical mode of BM25's quality.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m3_small_weights import LANGUAGES, ScoredSet, grid, read_jsonl

from trivec import Embedder
from trivec.evaluation.bm25 import Bm25Index

M3_WEIGHTS = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
ALL = ("dense", "sparse", "colbert")


def with_bm25(scored: ScoredSet, folder: Path, language: str) -> ScoredSet:
    """A copy of `scored` whose lexical mode is BM25 in `language`, each query's scores scaled so that their
    best is the set's mean best sparse score."""
    texts = [row["text"] for row in read_jsonl(folder / "corpus.jsonl")]
    questions = [row["text"] for row in read_jsonl(folder / "queries.jsonl")]
    index = Bm25Index(texts, language)
    typical = float(np.mean([parts["sparse"].max() for parts in scored.parts]))
    swapped = copy.copy(scored)
    swapped.parts = []
    for candidates, parts, question in zip(scored.candidates, scored.parts, questions, strict=True):
        bm25 = index.scores(question)[candidates].astype(np.float64)
        best = bm25.max()
        swapped.parts.append({**parts, "sparse": bm25 * (typical / best) if best > 0 else bm25})
    return swapped


def best_with_lexical(scored: ScoredSet, least: float = 0.05) -> tuple[float, str]:
    """The best `all` over the grid's triples whose lexical weight is ≥ `least`, weighted or z-score fusion,
    and the setting that gives it."""
    found = (-1.0, "")
    for weights in grid():
        if weights["sparse"] < least - 1e-9:
            continue
        for fusion in ("weighted", "zscore"):
            value = scored.ndcg(weights, ALL, fusion)
            if value > found[0] + 1e-9:
                triple = "/".join(f"{weights[m]:.2f}" for m in ALL)
                found = (value, f"{fusion} {triple}")
    return found


def perfect_switch(scored: ScoredSet) -> float:
    """`all` or dense + ColBERT (0.5 / 0.5), whichever ranks each question's paragraph higher."""
    both = scored.per_query(M3_WEIGHTS, ALL)
    without = scored.per_query({"dense": 0.5, "sparse": 0.0, "colbert": 0.5}, ("dense", "colbert"))
    return float(100 * np.maximum(both, without).mean())


def held_out_weights(scored: ScoredSet, halvings: int = 5, least: float = 0.05) -> float:
    """Mean `all` when the weights are picked on one half of the questions (best weighted triple, lexical
    weight ≥ `least`) and scored on the other, both ways, over `halvings` seeded halvings: each halving
    scores every question once, with weights that never saw it."""
    triples = [w for w in grid() if w["sparse"] >= least - 1e-9]
    table = np.stack([scored.per_query(w, ALL) for w in triples])  # [triples, questions]
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(halvings):
        order = rng.permutation(table.shape[1])
        halves = (order[: order.size // 2], order[order.size // 2 :])
        held = np.zeros(table.shape[1])
        for pick, score in (halves, halves[::-1]):
            held[score] = table[int(np.argmax(table[:, pick].mean(axis=1))), score]
        scores.append(held.mean())
    return float(100 * np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="validation sets (retrieval layout)")
    parser.add_argument("--model", default="m3-small")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    for folder in args.folders:
        if folder.name not in LANGUAGES:
            parser.error(f"{folder}: not named after a training folder ({', '.join(LANGUAGES)})")
    embedder = Embedder.from_pretrained(args.model, dtype=args.dtype)
    print(
        "| set | dense | sparse | colbert | BM25 | all, M3 weights: sparse / BM25 | best with lexical ≥ 0.05: "
        "sparse | … BM25 | perfect switch all / dense+colbert | per-set weights, held out |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        scored = ScoredSet(embedder, folder)
        swapped = with_bm25(scored, folder, LANGUAGES[folder.name])
        alone = [scored.ndcg(M3_WEIGHTS, (m,)) for m in ALL] + [swapped.ndcg(M3_WEIGHTS, ("sparse",))]
        fused = [scored.ndcg(M3_WEIGHTS, ALL), swapped.ndcg(M3_WEIGHTS, ALL)]
        (learned, learned_at), (bm25, bm25_at) = best_with_lexical(scored), best_with_lexical(swapped)
        print(
            f"| {folder} | "
            + " | ".join(f"{v:.2f}" for v in alone)
            + f" | {fused[0]:.2f} / {fused[1]:.2f} | "
            f"{learned:.2f} ({learned_at}) | {bm25:.2f} ({bm25_at}) | {perfect_switch(scored):.2f} | "
            f"{held_out_weights(scored):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
