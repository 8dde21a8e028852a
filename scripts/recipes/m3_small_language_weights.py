"""Choose a model's fusion weights per language on one validation cut and judge them on another — never an
evaluation set.

    python scripts/recipes/m3_small_language_weights.py --choose-on build/m3-small-val-v8 \
        --judge-on build/m3-small-val-v8-cut2 [--model m3-small] [--compare runs/m3-small/v8] \
        [--write src/trivec/resources/m3-small/trivec_config.json]

Both folders hold validation sets written by `m3_small_weights.py` (one per training folder, named after it,
which gives the language), the second a later `--cut` of the same folders: other questions, other
paragraphs. Every set is encoded once; `all` is scored over the dense top 100 ∪ sparse top 100 with the
model's own fusion (its method and, for `auto`, its calibrated spreads), as `trivec eval` scores it.

1. Choose, per language whose `--choose-on` set has at least `--min-questions` questions: the triple of the
   0.05 grid with every weight ≥ 0.05 (all three modes stay in `all`, and the two-mode hybrids a call may ask
   for — `dense+sparse`, an index without ColBERT — keep both of theirs) with the best `all` on that set (to
   0.01), ties to the nearest to the model's weights. Printed beside the model's weights and an honest
   estimate of the chosen weights on new questions of that set (picked on one half, scored on the other,
   five halvings: `held_out_mean`).
2. Judge, on each `--judge-on` set (none of its questions chose anything): dense, `all` with the model's
   weights, `all` with the language's weights; pooled over every question with the 95 % paired-bootstrap
   interval of the gain. A language **adopts** its weights only where this judgement says they do not lose:
   its judging set has at least `--min-questions` questions and its `all` with them is ≥ `all` with the
   model's weights there. A language without such a set keeps the model's weights (weights chosen on one set
   and never checked on another are not shipped). `--compare`: a second model put through the same steps
   (its own weights chosen on the same sets), and the difference of the two models' `all`, each with the
   weights it adopted.
3. `--write`: the adopted weights become the model's `fusion_weights_by_language` in that trivec_config.json
   (other keys kept), used wherever a call names the queries' language (`trivec.models.weights`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m3_small_lexical_bound import check_folder, held_out_mean
from m3_small_weights import LANGUAGES, ScoredSet, bootstrap_interval, grid, read_jsonl

from trivec import Embedder
from trivec.models.weights import MODES


def scored_sets(embedder: Embedder, folder: Path, least: int) -> dict[str, ScoredSet]:
    """The sets of `folder` with at least `least` questions, by language, scored with the model's fusion."""
    defaults = embedder.fusion_defaults
    sets = {}
    for path, questions in with_questions(folder).items():
        if questions >= least:
            sets[LANGUAGES[path.name]] = ScoredSet(embedder, path, fusion=defaults.method)
            sets[LANGUAGES[path.name]].spreads = defaults.spreads
    return sets


def with_questions(folder: Path) -> dict[Path, int]:
    """The validation sets of `folder` that have questions, with how many (a small training folder's later
    cut has none)."""
    paths = [folder / name for name in LANGUAGES if (folder / name / "queries.jsonl").is_file()]
    counts = {path: len(read_jsonl(path / "queries.jsonl")) for path in paths}
    return {path: count for path, count in counts.items() if count}


def triple(weights: dict[str, float]) -> str:
    return "/".join(f"{weights[m]:.2f}" for m in MODES)


def every_mode_triples(least: float = 0.05) -> list[dict[str, float]]:
    """The grid's triples whose every weight is ≥ `least`."""
    return [w for w in grid() if min(w.values()) >= least - 1e-9]


def choose(sets: dict[str, ScoredSet], model: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per language: the best `all` triple of its set (every weight ≥ 0.05; to 0.01, ties nearest `model`)."""
    triples = sorted(every_mode_triples(), key=lambda w: sum(abs(w[m] - model[m]) for m in MODES))
    chosen = {}
    print("| language (chosen on) | questions | `all`, model's weights | chosen | `all`, chosen | held out |")
    print("|---|---:|---|---|---|---|")
    for language, scored in sets.items():
        table = np.stack([scored.per_query(w, MODES) for w in triples])
        means = np.round(100 * table.mean(axis=1), 2)
        best = int(np.argmax(means))
        chosen[language] = triples[best]
        print(
            f"| {language} | {table.shape[1]} | {100 * scored.per_query(model, MODES).mean():.2f} "
            f"({triple(model)}) | {triple(triples[best])} | {means[best]:.2f} "
            f"| {100 * held_out_mean(table):.2f} |",
            flush=True,
        )
    return chosen


def judge(
    sets: dict[str, ScoredSet], model: dict[str, float], chosen: dict[str, dict[str, float]], least: int
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Print dense / `all` with the model's weights / `all` with the language's on each set and pooled, and
    which languages adopt their weights (a judging set of ≥ `least` questions where they do not lose).
    Returns the adopted weights and every question's `all` with them (sets in `LANGUAGES` order)."""
    print(
        "\n| language (judged on) | questions | dense | `all`, model's weights | `all`, language's weights "
        "| adopted |"
    )
    print("|---|---:|---|---|---|---|")
    rows, gains, adopted, judged = [], [], {}, set()
    for language, scored in sets.items():
        dense = scored.per_query(model, ("dense",))
        base = scored.per_query(model, MODES)
        own = scored.per_query(chosen.get(language, model), MODES)
        if dense.size >= least:
            judged.add(language)
            if language in chosen and own.mean() >= base.mean():
                adopted[language] = chosen[language]
        rows.append((dense, base, own, own if language in adopted else base))
        gains.append(own - base)
        mark = "" if language in chosen else " (model's)"
        print(
            f"| {language} | {dense.size} | {100 * dense.mean():.2f} | {100 * base.mean():.2f} "
            f"| {100 * own.mean():.2f}{mark} | {'yes' if language in adopted else 'no'} |",
            flush=True,
        )
    pooled = [100 * np.concatenate(column).mean() for column in zip(*rows, strict=True)]
    cells = " | ".join(f"{v:.2f}" for v in pooled[:3])
    print(f"| **pooled** | {sum(r[0].size for r in rows)} | {cells} | adopted: {pooled[3]:.2f} |")
    every = np.concatenate(gains)
    low, high = bootstrap_interval([every])
    print(
        f"\npooled gain of the language's weights: {100 * every.mean():+.2f} (95 % {low:+.2f} … {high:+.2f})"
    )
    print(
        f"adopted: {', '.join(adopted) or 'none'}; chosen but not judged: "
        f"{', '.join(sorted(set(chosen) - judged)) or 'none'}"
    )
    return adopted, np.concatenate([row[3] for row in rows])


def run(name: str, args: argparse.Namespace) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Steps 1 and 2 for one model: its adopted weights and its judged per-question `all` with them."""
    embedder = Embedder.from_pretrained(name, dtype=args.dtype)
    model = embedder.fusion_weights
    print(f"\n## {name} (fusion {embedder.fusion_defaults.method}, weights {triple(model)})\n")
    chosen = choose(scored_sets(embedder, args.choose_on, args.min_questions), model)
    return judge(scored_sets(embedder, args.judge_on, 1), model, chosen, args.min_questions)


def write(config: Path, chosen: dict[str, dict[str, float]]) -> None:
    settings = json.loads(config.read_text(encoding="utf-8"))
    settings["fusion_weights_by_language"] = chosen
    config.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote fusion_weights_by_language ({', '.join(chosen) or 'none'}) to {config}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--choose-on", type=Path, required=True, help="validation sets the weights are chosen on"
    )
    parser.add_argument("--judge-on", type=Path, required=True, help="a later cut of the same folders")
    parser.add_argument("--model", default="m3-small")
    parser.add_argument("--compare", help="a second model, put through the same steps")
    parser.add_argument(
        "--min-questions", type=int, default=100, help="smaller sets neither choose nor judge weights"
    )
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--write", type=Path, help="a trivec_config.json to store the chosen weights in")
    args = parser.parse_args()
    if args.choose_on.resolve() == args.judge_on.resolve():
        parser.error(
            "--judge-on must be another cut than --choose-on: weights are not judged on their own set"
        )
    for folder in (args.choose_on, args.judge_on):
        present = with_questions(folder)
        if not present:
            parser.error(f"{folder}: no validation set with questions ({', '.join(LANGUAGES)})")
        for path in present:
            check_folder(parser, path)
    if args.write is not None and not args.write.is_file():
        parser.error(f"--write {args.write}: no such trivec_config.json")
    chosen, judged = run(args.model, args)
    if args.compare:
        _, other = run(args.compare, args)
        diff = judged - other
        low, high = bootstrap_interval([diff])
        print(
            f"\npooled `all` with adopted weights, {args.model} − {args.compare}: {100 * diff.mean():+.2f} "
            f"(95 % {low:+.2f} … {high:+.2f})"
        )
    if args.write is not None:
        write(args.write, chosen)


if __name__ == "__main__":
    main()
