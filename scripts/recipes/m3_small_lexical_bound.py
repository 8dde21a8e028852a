"""How far fusion of a model's three modes can take `all` on a validation set, and how far it could with
a lexical mode as good as BM25 — the bounds docs/m3-small.md gives for TyDi QA Indonesian.

    python scripts/recipes/m3_small_lexical_bound.py build/m3-small-val-cut2/tydiqa-id-train [more folders]
        [--model m3-small] [--dtype bfloat16]

Each folder (a validation set written by `m3_small_weights.py`, named after its training folder, which gives
its language) is encoded once; candidates as `trivec eval`'s `all` takes them (dense top 100 ∪ sparse top
100). Printed, nDCG@10 × 100, for the learned lexical mode and again with BM25 (`trivec eval`'s, in the
folder's language) in its place, on the same candidates, its scores multiplied by one factor per set (the
sparse mode's mean best score over BM25's) so that a weight means about what it means for the sparse mode:
- each mode alone, and `all` with M3's weights;
- the best triple of the 0.05 grid with a lexical weight ≥ 0.05, weighted or z-score fusion, *picked on the
  set itself*: an oracle for fixed weights, optimistic by construction;
- weights chosen for the set alone, scored honestly: the best weighted triple (lexical ≥ 0.05; ties to the
  nearest to M3's weights) picked on a random half of the questions and scored on the other half, both ways,
  over five halvings;
- a perfect per-query switch between `all` and dense + ColBERT (the better of the two for each question,
  known from its answer).
If the honest column stays below dense, weights chosen for that language (weighted fusion, lexical weight
≥ 0.05) would not lift `all` over dense on new questions; if the oracle does too, no fixed weighting of the
grid would, even picked on the answers.
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
from trivec.models.weights import DEFAULT_WEIGHTS, MODES

RETRIEVAL_FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")


def with_bm25(scored: ScoredSet, folder: Path, language: str) -> ScoredSet:
    """A copy of `scored` whose lexical mode is BM25 in `language` on the same candidates, multiplied by one
    factor for the set: the sparse mode's mean best score over BM25's (a query's own strength is kept)."""
    texts = [row["text"] for row in read_jsonl(folder / "corpus.jsonl")]
    questions = [row["text"] for row in read_jsonl(folder / "queries.jsonl")]
    index = Bm25Index(texts, language)
    bm25 = [
        index.scores(question)[candidates].astype(np.float64)
        for candidates, question in zip(scored.candidates, questions, strict=True)
    ]
    bm25_best = float(np.mean([values.max() for values in bm25]))
    factor = (
        float(np.mean([parts["sparse"].max() for parts in scored.parts])) / bm25_best
        if bm25_best > 0
        else 0.0
    )
    swapped = copy.copy(scored)
    swapped.parts = [
        {**parts, "sparse": values * factor} for parts, values in zip(scored.parts, bm25, strict=True)
    ]
    return swapped


def best_with_lexical(scored: ScoredSet, least: float = 0.05) -> tuple[float, str]:
    """The best `all` over the grid's triples whose lexical weight is ≥ `least`, weighted or z-score fusion,
    and the setting that gives it."""
    found = (-1.0, "")
    for weights in lexical_triples(least):
        for fusion in ("weighted", "zscore"):
            value = scored.ndcg(weights, MODES, fusion)
            if value > found[0] + 1e-9:
                triple = "/".join(f"{weights[m]:.2f}" for m in MODES)
                found = (value, f"{fusion} {triple}")
    return found


def perfect_switch(scored: ScoredSet) -> float:
    """`all` or dense + ColBERT (0.5 / 0.5), whichever ranks each question's paragraph higher."""
    both = scored.per_query(DEFAULT_WEIGHTS, MODES)
    without = scored.per_query({"dense": 0.5, "sparse": 0.0, "colbert": 0.5}, ("dense", "colbert"))
    return float(100 * np.maximum(both, without).mean())


def lexical_triples(least: float = 0.05) -> list[dict[str, float]]:
    """The grid's triples with a lexical weight ≥ `least`, nearest to M3's weights first (the tie order)."""
    triples = [w for w in grid() if w["sparse"] >= least - 1e-9]
    return sorted(triples, key=lambda w: sum(abs(w[m] - DEFAULT_WEIGHTS[m]) for m in MODES))


def held_out_mean(table: np.ndarray, halvings: int = 5) -> float:
    """`table [triples, questions]` of per-question scores, triples in tie order: the mean score when each
    half of the questions is scored by the triple best on the other half (the first of the tied), over
    `halvings` seeded halvings. Every question is scored once per halving, by weights that never saw it."""
    rng = np.random.default_rng(0)
    means = []
    for _ in range(halvings):
        order = rng.permutation(table.shape[1])
        halves = (order[: order.size // 2], order[order.size // 2 :])
        held = np.zeros(table.shape[1])
        for pick, score in (halves, halves[::-1]):
            held[score] = table[int(np.argmax(table[:, pick].mean(axis=1))), score]
        means.append(held.mean())
    return float(np.mean(means))


def held_out_weights(scored: ScoredSet, halvings: int = 5) -> float:
    """`all` (× 100) with weights chosen for this set on questions they are not scored on (`held_out_mean`)."""
    table = np.stack([scored.per_query(w, MODES) for w in lexical_triples()])
    return 100 * held_out_mean(table, halvings)


def check_folder(parser: argparse.ArgumentParser, folder: Path) -> None:
    """Refuse, by name and before any model loads, a folder that is not a validation set with questions."""
    if folder.name not in LANGUAGES:
        parser.error(f"{folder}: not named after a training folder ({', '.join(LANGUAGES)})")
    missing = [name for name in RETRIEVAL_FILES if not (folder / name).is_file()]
    if missing:
        parser.error(f"{folder}: no {', '.join(missing)} (a validation set in the retrieval layout)")
    if not read_jsonl(folder / "queries.jsonl"):
        parser.error(f"{folder}: no questions in queries.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="validation sets (retrieval layout)")
    parser.add_argument("--model", default="m3-small")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    for folder in args.folders:
        check_folder(parser, folder)
    embedder = Embedder.from_pretrained(args.model, dtype=args.dtype)
    print(
        "| set | dense | colbert | sparse / BM25 | all, M3 weights: sparse / BM25 | oracle weights: sparse "
        "| oracle weights: BM25 | held-out weights: sparse / BM25 | perfect switch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in args.folders:
        scored = ScoredSet(embedder, folder)
        swapped = with_bm25(scored, folder, LANGUAGES[folder.name])
        both = (scored, swapped)
        oracle = [best_with_lexical(s) for s in both]
        cells = [
            f"{scored.ndcg(DEFAULT_WEIGHTS, ('dense',)):.2f}",
            f"{scored.ndcg(DEFAULT_WEIGHTS, ('colbert',)):.2f}",
            " / ".join(f"{s.ndcg(DEFAULT_WEIGHTS, ('sparse',)):.2f}" for s in both),
            " / ".join(f"{s.ndcg(DEFAULT_WEIGHTS, MODES):.2f}" for s in both),
            *(f"{value:.2f} ({setting})" for value, setting in oracle),
            " / ".join(f"{held_out_weights(s):.2f}" for s in both),
            f"{perfect_switch(scored):.2f}",
        ]
        print(f"| {folder} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
