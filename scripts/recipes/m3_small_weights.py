"""Choose m3-small's fusion weights on validation sets made from the *training* splits — never an evaluation set.

    python scripts/recipes/m3_small_weights.py [--model m3-small] [--config configs/m3-small.yaml]
        [--out build/m3-small-val] [--write src/trivec/resources/m3-small/trivec_config.json]
        [--cut 2] [--sets-only]

1. Validation sets. For each question → paragraph training folder the recipe trains on (`*-train`), the rows
   the training run actually read are found again (the same seeded subsample of every mined file the config
   lists, `max_examples_per_file` rows each); every query, positive and negative of those rows is "seen".
   From the other rows: up to `--queries` questions whose paragraph was never seen, over a corpus of up to
   `--corpus` unseen paragraphs of the same folder (the questions' own paragraphs included). Written in the
   retrieval layout to `OUT/<folder>/` so `trivec eval --task-dir OUT/<folder> --language L` reads them too.
   For the folders in cased scripts (French, Indonesian, Turkish) an all-capitals copy (`OUT/<folder>-caps/`)
   checks the model's `fold_capitals` rule: scored with and without it.
2. Weights. Each set is encoded once (dense, sparse, ColBERT; bf16 as the evaluation runs); the candidates of
   a query are the union of its dense top 100 and its sparse top 100 with a positive score (as `trivec
   eval`'s `all` and a search take them); nDCG@10 of the weighted hybrid is computed for every (dense,
   sparse, colbert) weight triple on a 0.05 grid of the simplex. Best:
   among the triples whose `all` is not below dense alone on any set, the best mean `all` nDCG@10 over the
   (un-capitalised) sets (to 0.01), then the nearest to M3's 0.4 / 0.2 / 0.4. It replaces M3's weights only
   if its gain is beyond the noise of these sets (the 95 % paired-bootstrap interval of the gain lies above
   0); `--write` stores the result as the model's `fusion_weights`.

`--fusion auto` calibrates auto fusion instead (`trivec.retrieval.fusion`: the weighted mean where a query's
per-mode score spreads lie within the ranges the weights were chosen in, z-scores elsewhere): per mode, the
[1st, 99th] percentile of the per-query spread over the validation queries (pooled, un-capitalised sets), and
prints the sets' `all` with weighted and with auto fusion (the model's weights) and how many queries it sends
to z-scores; `--write` stores the ranges as the model's `fusion_spreads`, `--make-default` also its `fusion`.

`--fusion zscore` runs step 2 with z-score fusion (`trivec.retrieval.fusion`: each mode standardised over a
query's candidates) and prints its best triple's mean `all` beside weighted fusion with M3's weights (the
measurement docs/m3-small.md reports; the model's config records weights only, so `--write` is refused).
Each run also prints the modes' score spreads over each set's candidates (`score_spreads`), and over the
retrieval folders given to `--spreads-of` (nothing else is computed on those).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from trivec import Embedder
from trivec.evaluation.data import write_retrieval_folder
from trivec.inference.scoring import lexical_scores, maxsim_scores
from trivec.models.weights import DEFAULT_WEIGHTS, MODES
from trivec.retrieval.fusion import fuse, query_spreads, within_spreads
from trivec.training.dataset import subsample

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
LANGUAGES = {
    "cmrc2018-train": "zh",
    "jaquad-train": "ja",
    "iapp-wiki-qa-train": "th",
    "tquad-train": "tr",
    "arcd-train": "ar",
    "parsinlu-rc-train": "fa",
    "piaf-train": "fr",
    "tydiqa-id-train": "id",
}
CASED = ("piaf-train", "tydiqa-id-train", "tquad-train")
DEPTH = 100


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def seen_texts(config: dict, folder: str) -> set[str]:
    """Every text of the rows the training run read from the files mined out of `folder`."""
    data = config["data"]
    seed = int(config.get("training", {}).get("seed", 42))
    seen: set[str] = set()
    for entry in data["train_data"]:
        path = Path(entry["path"] if isinstance(entry, dict) else entry)
        if not path.name.startswith(folder + "-"):
            continue
        limit = (entry.get("max_examples") if isinstance(entry, dict) else None) or data.get(
            "max_examples_per_file"
        )
        rows = subsample(read_jsonl(REPO / path if not path.is_absolute() else path), limit, seed)
        for row in rows:
            seen.add(row["query"])
            seen.update(row["pos"])
            seen.update(row.get("neg", []))
    if not seen:
        raise SystemExit(f"no training file of {folder} in the config: nothing to hold out against")
    return seen


def build_set(
    configs: list[dict], folder: str, out: Path, queries: int, corpus_size: int, cut: int = 1
) -> Path:
    """The validation set of `folder` (module doc, step 1); `cut` 2 takes the next `queries` questions of the
    same seeded order, whose paragraphs cut 1 did not ask about (a second look, on questions never scored)."""
    rows = read_jsonl(SHARED / "data" / folder / "train.jsonl")
    seen = set().union(*(seen_texts(config, folder) for config in configs))
    paragraphs = list(dict.fromkeys(p for row in rows for p in row["pos"] if p not in seen))
    rng = random.Random(0)
    held = [row for row in rows if row["query"] not in seen and row["pos"][0] not in seen]
    rng.shuffle(held)
    chosen: dict[str, dict] = {}
    earlier: set[str] = set()  # the paragraphs the earlier cuts asked about
    for row in held:
        paragraph = row["pos"][0]
        if paragraph in chosen or paragraph in earlier:
            continue
        if len(earlier) < (cut - 1) * queries:
            earlier.add(paragraph)
            continue
        chosen[paragraph] = row
        if len(chosen) >= queries:
            break
    others = [p for p in paragraphs if p not in chosen]
    rng.shuffle(others)
    corpus = list(chosen) + others[: max(0, corpus_size - len(chosen))]
    doc_id = {text: f"d{i}" for i, text in enumerate(corpus)}
    target = write_retrieval_folder(
        out / folder,
        {i: text for text, i in doc_id.items()},
        {f"q{k}": row["query"] for k, row in enumerate(chosen.values())},
        [(f"q{k}", doc_id[paragraph]) for k, paragraph in enumerate(chosen)],
    )
    print(
        f"{folder}: {len(chosen)} queries, {len(corpus)} paragraphs (held out of {len(rows)} rows, cut {cut})",
        file=sys.stderr,
    )
    return target


def validation_sets(configs: list[dict], args: argparse.Namespace) -> dict[str, Path]:
    """Each training folder's validation set for `args.cut`; a folder whose held-out questions the earlier
    cuts took is left out (said on stderr)."""
    sets = {}
    for folder in LANGUAGES:
        path = build_set(configs, folder, args.out, args.queries, args.corpus, args.cut)
        if read_jsonl(path / "queries.jsonl"):
            sets[folder] = path
        else:
            print(f"{folder}: no held-out question left for cut {args.cut}, left out", file=sys.stderr)
    return sets


def capitalised(source: Path) -> Path:
    target = source.with_name(source.name + "-caps")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        rows = read_jsonl(source / name)
        with (target / name).open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps({**row, "text": row["text"].upper()}, ensure_ascii=False) + "\n")
    (target / "qrels.tsv").write_text((source / "qrels.tsv").read_text(encoding="utf-8"), encoding="utf-8")
    return target


def candidate_scores(
    embedder: Embedder, passages: list[str], questions: list[str]
) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Per question: its candidates — the dense top 100 ∪ the sparse top 100 with a positive score, as a
    search and `trivec eval`'s `all` take them — and their dense, sparse and ColBERT scores."""
    docs = embedder.encode(passages, dense=True, sparse=True, colbert=True, prompt_name="document")
    asked = embedder.encode(questions, dense=True, sparse=True, colbert=True, prompt_name="query")
    assert docs.dense is not None and asked.dense is not None
    assert docs.sparse is not None and asked.sparse is not None
    assert docs.colbert is not None and asked.colbert is not None
    dense_all = asked.dense @ docs.dense.T
    out = []
    for q in range(len(questions)):
        sparse_all = lexical_scores(asked.sparse[q], docs.sparse)
        dense_top = np.argsort(-dense_all[q], kind="stable")[:DEPTH]
        sparse_top = np.argsort(-sparse_all, kind="stable")[:DEPTH]
        sparse_top = sparse_top[sparse_all[sparse_top] > 0]
        candidates = np.array(list(dict.fromkeys([*dense_top.tolist(), *sparse_top.tolist()])))
        colbert = maxsim_scores(asked.colbert[q], [docs.colbert[i] for i in candidates.tolist()])
        scores = {"dense": dense_all[q][candidates], "sparse": sparse_all[candidates], "colbert": colbert}
        out.append((candidates, scores))
    return out


def score_spreads(parts: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """Per mode, the mean over questions of its candidates' mean score and standard deviation: how far
    apart a mode tells candidates, which is what a weight multiplies in weighted fusion."""
    return {
        mode: (
            float(np.mean([p[mode].mean() for p in parts])),
            float(np.mean([p[mode].std() for p in parts])),
        )
        for mode in MODES
    }


class ScoredSet:
    """One set encoded once: per query, the candidates (`candidate_scores`) with their three scores."""

    def __init__(self, embedder: Embedder, folder: Path, fusion: str = "weighted") -> None:
        self.fusion = fusion  # how `per_query` fuses the modes (weighted mean, z-scores or auto)
        self.spreads: dict[str, tuple[float, float]] | None = None  # auto fusion's ranges, once calibrated
        corpus = read_jsonl(folder / "corpus.jsonl")
        queries = read_jsonl(folder / "queries.jsonl")
        relevant = {}
        for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
            q, d, _ = line.split("\t")
            relevant[q] = d
        ids = [row["id"] for row in corpus]
        scored = candidate_scores(embedder, [r["text"] for r in corpus], [r["text"] for r in queries])
        self.candidates: list[np.ndarray] = [candidates for candidates, _ in scored]  # corpus positions
        self.parts: list[dict[str, np.ndarray]] = [scores for _, scores in scored]
        self.gold: list[np.ndarray] = [
            np.array([ids[i] == relevant[row["id"]] for i in candidates.tolist()])
            for (candidates, _), row in zip(scored, queries, strict=True)
        ]

    def per_query(
        self, weights: dict[str, float], modes: tuple[str, ...], fusion: str | None = None
    ) -> np.ndarray:
        """nDCG@10 of each query (one relevant paragraph) under the hybrid of `modes` (`fusion`, else
        `self.fusion`)."""
        values = np.zeros(len(self.parts))
        for k, (parts, gold) in enumerate(zip(self.parts, self.gold, strict=True)):
            scores = fuse(
                {m: parts[m] for m in modes}, fusion or self.fusion, weights, spread_ranges=self.spreads
            )
            values[k] = ndcg_at_10(np.argsort(-np.asarray(scores), kind="stable"), gold)
        return values

    def ndcg(self, weights: dict[str, float], modes: tuple[str, ...], fusion: str | None = None) -> float:
        """Mean nDCG@10 × 100."""
        return float(100 * self.per_query(weights, modes, fusion).mean())


def ndcg_at_10(order: np.ndarray, gold: np.ndarray) -> float:
    """nDCG@10 of a ranking (`order`: candidate positions, best first) with one relevant candidate (`gold`)."""
    hit = np.flatnonzero(gold[order[:10]])
    return 1.0 / np.log2(hit[0] + 2) if hit.size else 0.0


def gain_interval(
    sets: list[ScoredSet], chosen: dict[str, float], baseline: dict[str, float], rounds: int = 2000
) -> tuple[float, float]:
    """95 % interval of the mean-over-sets `all` gain of `chosen` over `baseline`: paired bootstrap of the
    queries, resampled within each set (seeded)."""
    modes = MODES
    return bootstrap_interval(
        [s.per_query(chosen, modes) - s.per_query(baseline, modes) for s in sets], rounds
    )


def bootstrap_interval(diffs: list[np.ndarray], rounds: int = 2000) -> tuple[float, float]:
    """95 % interval (× 100) of the mean over sets of per-query differences, queries resampled within each set."""
    rng = np.random.default_rng(0)
    means = np.zeros(rounds)
    for r in range(rounds):
        means[r] = np.mean([d[rng.integers(0, d.size, d.size)].mean() for d in diffs])
    low, high = np.quantile(100 * means, [0.025, 0.975])
    return float(low), float(high)


def grid(step: float = 0.05) -> list[dict[str, float]]:
    n = round(1 / step)
    return [
        {"dense": d / n, "sparse": s / n, "colbert": (n - d - s) / n}
        for d, s in itertools.product(range(n + 1), repeat=2)
        if d + s <= n
    ]


def compare(
    embedder: Embedder, args: argparse.Namespace, configs: list[dict], weights: dict[str, float]
) -> None:
    """`--model` and `--compare` side by side on the same validation sets (M3's weights), with the 95 %
    paired-bootstrap interval of the mean `all` difference."""
    other = Embedder.from_pretrained(args.compare, dtype=args.dtype)
    modes = {
        "dense": ("dense",),
        "sparse": ("sparse",),
        "colbert": ("colbert",),
        "all": MODES,
    }
    scored: dict[str, list[ScoredSet]] = {args.model: [], args.compare: []}
    print("| set | " + " | ".join(f"{m} {name}" for m in modes for name in ("model", "compare")) + " |")
    print("|---|" + "---|" * (2 * len(modes)))
    rows = []
    for folder, path in validation_sets(configs, args).items():
        pair = [ScoredSet(model, path) for model in (embedder, other)]
        for name, s in zip(scored, pair, strict=True):
            scored[name].append(s)
        row = [s.ndcg(weights, m) for m in modes.values() for s in pair]
        rows.append(row)
        print(f"| {folder} ({LANGUAGES[folder]}) | " + " | ".join(f"{v:.2f}" for v in row) + " |", flush=True)
    print("| **mean over sets** | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")
    pooled = [
        100 * np.concatenate([s.per_query(weights, m) for s in scored[name]]).mean()
        for m in modes.values()
        for name in scored
    ]
    print("| **pooled (each query once)** | " + " | ".join(f"{v:.2f}" for v in pooled) + " |")
    diffs = [
        a.per_query(weights, modes["all"]) - b.per_query(weights, modes["all"])
        for a, b in zip(scored[args.model], scored[args.compare], strict=True)
    ]
    low, high = bootstrap_interval(diffs)
    gain = 100 * np.mean([d.mean() for d in diffs])
    print(
        f"\nmean `all`, {args.model} − {args.compare}: {gain:+.2f} (95 % interval {low:+.2f} … {high:+.2f})"
    )
    every_query = np.concatenate(diffs)
    low, high = bootstrap_interval([every_query])
    print(
        f"pooled `all` (each query once), {args.model} − {args.compare}: {100 * every_query.mean():+.2f} "
        f"(95 % interval {low:+.2f} … {high:+.2f})"
    )


def calibrate_auto(
    sets: dict[str, ScoredSet], weights: dict[str, float], percentiles: tuple[float, float] = (1.0, 99.0)
) -> dict[str, tuple[float, float]]:
    """Auto fusion's ranges — per mode, the `percentiles` of the per-query score spread (`query_spreads`, as
    auto fusion measures it) over every query of `sets` — and the sets' `all` with weighted vs auto fusion
    vs auto fusion with the first-place vote (`weights`: the model's), printed."""
    ranges: dict[str, tuple[float, float]] = {}
    for mode in MODES:
        values = [query_spreads(p)[mode] for s in sets.values() for p in s.parts]
        low, high = np.percentile(values, percentiles)
        ranges[mode] = (round(float(low), 6), round(float(high), 6))
    print(f"\nauto fusion's ranges (per-query spread, percentiles {percentiles}): {ranges}")
    print("| set | dense | all, weighted | all, auto | all, auto+vote | queries fused by z-scores |")
    print("|---|---|---|---|---|---|")
    modes = MODES
    rows = []
    for folder, s in sets.items():
        s.spreads = ranges
        outside = sum(not within_spreads(p, weights, ranges) for p in s.parts)
        row = [
            s.ndcg(weights, ("dense",)),
            s.ndcg(weights, modes, "weighted"),
            s.ndcg(weights, modes, "auto"),
            s.ndcg(weights, modes, "auto+vote"),
        ]
        rows.append(row)
        print(f"| {folder} | " + " | ".join(f"{v:.2f}" for v in row) + f" | {outside} of {len(s.parts)} |")
    mean = np.mean(rows, axis=0)
    low, high = bootstrap_interval(
        [s.per_query(weights, modes, "auto") - s.per_query(weights, modes, "weighted") for s in sets.values()]
    )
    print("| **mean** | " + " | ".join(f"{v:.2f}" for v in mean) + " | |")
    print(
        f"\nauto − weighted, mean over sets: {mean[2] - mean[1]:+.2f} (95 % interval {low:+.2f} … {high:+.2f})"
    )
    low, high = bootstrap_interval(
        [
            s.per_query(weights, modes, "auto+vote") - s.per_query(weights, modes, "auto")
            for s in sets.values()
        ]
    )
    print(
        f"auto+vote − auto, mean over sets: {mean[3] - mean[2]:+.2f} (95 % interval {low:+.2f} … {high:+.2f})"
    )
    return ranges


def print_spreads(embedder: Embedder, parts: dict[str, list[dict]], folders: list[Path]) -> None:
    """The modes' score spreads (`score_spreads`) over the validation sets and the `folders` (read with
    `trivec eval`'s loader: judged queries, "title text" passages); nothing else is computed on them."""
    from trivec.evaluation.data import load_retrieval
    from trivec.evaluation.registry import task_from_dir

    rows = {name: score_spreads(p) for name, p in parts.items()}
    for folder in folders:
        data = load_retrieval(task_from_dir(folder)[0])
        scored = candidate_scores(embedder, data.corpus_texts, data.query_texts)
        rows[folder.name] = score_spreads([scores for _, scores in scored])
    print("\n| set | dense mean / std | sparse mean / std | colbert mean / std |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{m:.3f} / {sd:.3f}" for m, sd in row.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="m3-small")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        help="training config whose rows are held out (repeatable: rows any of them read; default "
        "configs/m3-small.yaml)",
    )
    parser.add_argument(
        "--compare", help="a second model scored on the same sets with M3's weights, side by side (then exit)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where the sets go (default build/m3-small-val, build/m3-small-val-cutN for N > 1)",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--corpus", type=int, default=800)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument(
        "--cut",
        type=int,
        default=1,
        help="which block of held-out questions: 1 (the sets the settings were chosen on), 2 (the next ones)",
    )
    parser.add_argument(
        "--sets-only",
        action="store_true",
        help="write the validation sets and a tasks.tsv of their languages (for trivec eval --task-dir), then exit",
    )
    parser.add_argument("--write", type=Path, help="a trivec_config.json to store the chosen weights in")
    parser.add_argument(
        "--fusion",
        choices=("weighted", "zscore", "auto"),
        default="weighted",
        help="weighted, zscore, or auto (calibrate its spread ranges)",
    )
    parser.add_argument(
        "--make-default",
        action="store_true",
        help="with --fusion auto --write: also make auto the model's fusion (the rule's outcome)",
    )
    parser.add_argument(
        "--spreads-of",
        type=Path,
        nargs="*",
        default=[],
        help="retrieval folders whose modes' score spreads are printed beside the validation sets' (only)",
    )
    args = parser.parse_args()
    if args.write and args.fusion == "zscore":
        parser.error("--write stores weights (weighted fusion) or auto fusion's ranges, not zscore's")
    if args.make_default and not (args.write and args.fusion == "auto"):
        parser.error("--make-default needs --fusion auto and --write")
    if args.compare and args.fusion != "weighted":
        parser.error("--compare scores both models with weighted fusion; --fusion applies to the weights run")
    configs = [
        yaml.safe_load(path.read_text(encoding="utf-8"))
        for path in args.config or [REPO / "configs" / "m3-small.yaml"]
    ]
    if args.cut < 1:
        parser.error(f"--cut must be 1 or more, got {args.cut}")
    if args.cut > 1 and args.write:
        parser.error(
            "--write stores settings chosen on cut 1; a later cut is for checking them, not choosing"
        )
    if args.out is None:
        args.out = REPO / "build" / ("m3-small-val" if args.cut == 1 else f"m3-small-val-cut{args.cut}")
    if args.sets_only:
        rows = "".join(
            f"{folder}\tretrieval\t{LANGUAGES[folder]}\n" for folder in validation_sets(configs, args)
        )
        (args.out / "tasks.tsv").write_text("folder\ttype\tlanguages\n" + rows, encoding="utf-8")
        return
    embedder = Embedder.from_pretrained(args.model, dtype=args.dtype)
    torch.manual_seed(0)
    default = dict(DEFAULT_WEIGHTS)
    if args.compare:
        compare(embedder, args, configs, default)
        return
    candidates = grid()
    set_fusion = "weighted" if args.fusion == "auto" else args.fusion  # auto: compared with weighted below
    sets: dict[str, ScoredSet] = {}
    caps: dict[str, dict[str, float]] = {}
    for folder, path in validation_sets(configs, args).items():
        sets[folder] = ScoredSet(embedder, path, set_fusion)
        if folder in CASED:
            caps_path = capitalised(path)
            fold = embedder.model.fold_capitals
            row = {}
            for on in (False, True):
                embedder.model.fold_capitals = on
                scored = ScoredSet(embedder, caps_path, set_fusion)
                row[f"fold {'on' if on else 'off'}"] = scored.ndcg(default, MODES)
                row[f"fold {'on' if on else 'off'} dense"] = scored.ndcg(default, ("dense",))
                row[f"fold {'on' if on else 'off'} sparse"] = scored.ndcg(default, ("sparse",))
            embedder.model.fold_capitals = fold
            row["as written"] = sets[folder].ndcg(default, MODES)
            caps[folder] = row
        print(f"{folder}: scored", file=sys.stderr, flush=True)
    if args.fusion == "auto":
        ranges = calibrate_auto(sets, embedder.fusion_weights)
        print_spreads(embedder, {name: s.parts for name, s in sets.items()}, args.spreads_of)
        if args.write:
            config_file = json.loads(args.write.read_text(encoding="utf-8")) if args.write.is_file() else {}
            config_file["fusion_spreads"] = {m: list(r) for m, r in ranges.items()}
            if args.make_default:
                config_file["fusion"] = "auto"
            args.write.write_text(json.dumps(config_file, indent=2) + "\n", encoding="utf-8")
            print(f"wrote fusion_spreads to {args.write}", file=sys.stderr)
        return
    table = {tuple(w.values()): [s.ndcg(w, MODES) for s in sets.values()] for w in candidates}
    dense_only = [s.ndcg(default, ("dense",)) for s in sets.values()]

    def no_loss(w: dict[str, float]) -> bool:
        return all(a >= d for a, d in zip(table[tuple(w.values())], dense_only, strict=True))

    def preference(w: dict[str, float]) -> tuple[bool, float, float]:
        """Rule: no set below dense alone, then the best mean `all`, then the nearest to M3's weights."""
        distance = sum(abs(w[m] - default[m]) for m in default)
        return no_loss(w), round(float(np.mean(table[tuple(w.values())])), 2), -distance

    best = max(candidates, key=preference)
    if args.fusion != "weighted":
        mean = float(np.mean(table[tuple(best.values())]))
        modes = MODES
        weighted = float(np.mean([s.ndcg(default, modes, "weighted") for s in sets.values()]))
        at_m3 = float(np.mean(table[tuple(default.values())]))
        print(
            f"\n{args.fusion} fusion: M3's weights {at_m3:.2f} ({at_m3 - weighted:+.2f}), best triple {best} "
            f"{mean:.2f} ({mean - weighted:+.2f}; eligible: {no_loss(best)}); weighted fusion with M3's "
            f"weights {weighted:.2f} (differences from unrounded means)"
        )
    low, high = gain_interval(list(sets.values()), best, default)
    verdict = (
        f"the best triple {best} gains {np.mean(table[tuple(best.values())]) - np.mean(table[tuple(default.values())]):+.2f} "
        f"on the mean over sets (95 % interval {low:+.2f} … {high:+.2f})"
    )
    if low <= 0:
        print(f"M3's weights kept: {verdict} — not beyond the noise of these sets", file=sys.stderr)
        print(f"\nM3's weights kept: {verdict}, not beyond the noise of these sets.")
        best = dict(default)
    print(f"\nfusion of the hybrids below: {args.fusion}")
    print(
        "| set | dense | sparse | colbert | dense+sparse (M3 0.4/0.2/0.4) | all (M3) | dense+sparse (chosen) | all (chosen) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    means = []
    for folder, s in sets.items():
        values = [
            s.ndcg(default, ("dense",)),
            s.ndcg(default, ("sparse",)),
            s.ndcg(default, ("colbert",)),
            s.ndcg(default, ("dense", "sparse")),
            s.ndcg(default, MODES),
            s.ndcg(best, ("dense", "sparse")),
            s.ndcg(best, MODES),
        ]
        means.append(values)
        print(f"| {folder} ({LANGUAGES[folder]}) | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    print("| **mean** | " + " | ".join(f"{v:.2f}" for v in np.mean(means, axis=0)) + " |")
    print(f"\nchosen weights ({len(candidates)} triples, {len(sets)} sets; rule in the module doc): {best}")
    ranked = sorted(candidates, key=preference, reverse=True)[:8]
    for w in ranked:
        print(
            f"  {w}: mean all {np.mean(table[tuple(w.values())]):.2f}, worst set − dense "
            f"{min(v - s.ndcg(w, ('dense',)) for v, s in zip(table[tuple(w.values())], sets.values(), strict=True)):+.2f}"
        )
    print(
        "\n| all-capitals copy | as written (all) | fold off: all | fold on: all | fold off: dense | fold on: dense | fold off: sparse | fold on: sparse |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for folder, row in caps.items():
        print(
            f"| {folder} | {row['as written']:.2f} | {row['fold off']:.2f} | {row['fold on']:.2f} | "
            f"{row['fold off dense']:.2f} | {row['fold on dense']:.2f} | {row['fold off sparse']:.2f} | {row['fold on sparse']:.2f} |"
        )
    print_spreads(embedder, {name: s.parts for name, s in sets.items()}, args.spreads_of)
    if args.write:
        config_file = json.loads(args.write.read_text(encoding="utf-8")) if args.write.is_file() else {}
        config_file["fusion_weights"] = {k: round(v, 4) for k, v in best.items()}
        args.write.write_text(json.dumps(config_file, indent=2) + "\n", encoding="utf-8")
        print(f"wrote fusion_weights to {args.write}", file=sys.stderr)


if __name__ == "__main__":
    main()
