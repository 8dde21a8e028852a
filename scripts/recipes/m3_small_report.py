"""The results page of m3-small: `trivec eval` result folders → markdown tables and the issue's targets.

    python scripts/recipes/m3_small_report.py --run e5=runs/m3-small/eval/e5 --run m3-small=... \
        --run m3-small-nosd=... --run minilm-m3=... [--output docs/m3-small-results.md]

Rows: every retrieval set (nDCG@10 × 100) with its language, then TrecQA (MAP), Tatoeba (mean F1 over its
language pairs) and STS-B multilingual (mean Spearman). Columns: BM25, then each run's modes. The first run
is the baseline whose dense mode the targets compare against; the run named `m3-small` is the new model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trivec.evaluation.significance import mode_differences

ENGLISH = ("vaswani-npl", "cranfield", "cacm", "lisa")
MULTILINGUAL = (
    "cmrc2018-trial-retrieval",
    "jaquad-dev-retrieval",
    "tquad-dev-retrieval",
    "iapp-wiki-qa-dev-retrieval",
    "tydiqa-id-dev-retrieval",
    "arcd-test-retrieval",
    "parsinlu-rc-dev-retrieval",
)
MODES = ("dense", "sparse", "colbert", "dense+sparse", "all")


def load(folder: Path) -> dict[str, dict]:
    return {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in folder.glob("*.json")
        if p.stem != "summary"
    }


def value(results: dict[str, dict], task: str, mode: str) -> float | None:
    found = results.get(task, {}).get("main_score", {}).get("values", {}).get(mode)
    return None if found is None else 100 * float(found)


def mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None


def family_mean(results: dict[str, dict], prefix: str, mode: str = "dense") -> float | None:
    return mean([value(results, t, mode) for t in results if t.startswith(prefix + "-")] or [None])


def shared(runs: dict[str, dict[str, dict]], task: str, key: str = "bm25") -> float | None:
    """A value every run computes alike (BM25, the task's languages): from the first run that has the task."""
    return next((value(r, task, key) for r in runs.values() if value(r, task, key) is not None), None)


def languages(runs: dict[str, dict[str, dict]], task: str) -> str:
    for results in runs.values():
        if task in results:
            return ",".join(results[task].get("task", {}).get("languages", []))
    return ""


def cell(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def paired(results: dict[str, dict]) -> list[str]:
    """The new model's hybrids against its dense mode on each retrieval set, paired per query: mean
    difference × 100, 95 % bootstrap interval, randomization-test p (results that keep per-query values)."""
    rows = [(t, mode_differences(results[t])) for t in (*ENGLISH, *MULTILINGUAL) if t in results]
    rows = [(t, d) for t, d in rows if d]
    if not rows:
        return []
    out = ["## Hybrids against dense, paired per query", "",
           "nDCG@10 × 100 of (mode − dense) over each set's questions: mean, 95 % paired-bootstrap interval, "
           "two-sided randomization-test p (`trivec.evaluation.significance`).", "",
           "| set | questions | dense+sparse − dense | all − dense |", "|---|---:|---|---|"]  # fmt: skip
    for task, differences in rows:
        cells = [differences[m].describe() if m in differences else "–" for m in ("dense+sparse", "all")]
        count = next(iter(differences.values())).queries
        out.append(f"| {task} | {count} | " + " | ".join(cells) + " |")
    return [*out, ""]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="append", required=True, help="LABEL=DIR of a trivec eval run")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    runs = {label: load(Path(path)) for label, path in (r.split("=", 1) for r in args.run)}
    base_label = next(iter(runs))
    columns = [(label, mode) for label, res in runs.items() for mode in MODES
               if any(value(res, t, mode) is not None for t in (*ENGLISH, *MULTILINGUAL))]  # fmt: skip
    lines = ["| set | lang | BM25 | " + " | ".join(f"{label} {mode}" for label, mode in columns) + " |"]
    lines.append("|" + "---|" * (3 + len(columns)))
    groups = {"English": ENGLISH, "multilingual": MULTILINGUAL}
    for group, tasks in groups.items():
        for task in tasks:
            row = [task, languages(runs, task), cell(shared(runs, task))]
            row += [cell(value(runs[label], task, mode)) for label, mode in columns]
            lines.append("| " + " | ".join(row) + " |")
        row = [f"**mean, {group}**", "", cell(mean([shared(runs, t) for t in tasks]))]
        row += [cell(mean([value(runs[label], t, mode) for t in tasks])) for label, mode in columns]
        lines.append("| " + " | ".join(row) + " |")
    out = ["## Retrieval, nDCG@10 × 100", "", *lines, ""]

    out += [
        "## Other tasks",
        "",
        "| task | metric | BM25 | " + " | ".join(runs) + " |",
        "|---|---|---|" + "---|" * len(runs),
    ]
    trecqa = [cell(value(r, "trecqa", "all") or value(r, "trecqa", "dense")) for r in runs.values()]
    out.append(
        f"| trecqa (reranking; `all` where the model has it) | MAP | {cell(shared(runs, 'trecqa'))} | "
        + " | ".join(trecqa)
        + " |"
    )
    out.append(
        "| tatoeba-bitext (mean of its language pairs) | F1 | – | "
        + " | ".join(cell(family_mean(r, "tatoeba-bitext")) for r in runs.values())
        + " |"
    )
    out.append(
        "| stsb-multi-mt (mean of 11 languages) | Spearman | – | "
        + " | ".join(cell(family_mean(r, "stsb-multi-mt")) for r in runs.values())
        + " |"
    )
    out.append("")

    new = runs.get("m3-small")
    if new is not None:
        base = runs[base_label]
        en_all, en_dense = (
            mean([value(new, t, "all") for t in ENGLISH]),
            mean([value(new, t, "dense") for t in ENGLISH]),
        )
        en_bm25 = mean([shared(runs, t) for t in ENGLISH])
        errs = [
            (100 - (value(new, t, "dense") or 0), 100 - (value(new, t, "all") or 0)) for t in MULTILINGUAL
        ]
        cut = mean([(d - a) / d * 100 if d > 0 else 0.0 for d, a in errs])
        non_en = MULTILINGUAL
        sparse_ratio = mean([value(new, t, "sparse") for t in non_en])
        bm25_non_en = mean([shared(runs, t) for t in non_en])
        checks = [
            (
                "English: all ≥ dense + 2 (mean)",
                en_all,
                None if en_dense is None else en_dense + 2,
                en_all is not None and en_dense is not None and en_all >= en_dense + 2,
            ),
            (
                "English: all ≥ BM25 (mean)",
                en_all,
                en_bm25,
                en_all is not None and en_bm25 is not None and en_all >= en_bm25,
            ),
            (
                "multilingual: all ≥ dense on every set (sets where it holds / sets)",
                float(
                    sum((value(new, t, "all") or 0) >= (value(new, t, "dense") or 0) for t in MULTILINGUAL)
                ),
                float(len(MULTILINGUAL)),
                all((value(new, t, "all") or 0) >= (value(new, t, "dense") or 0) for t in MULTILINGUAL),
            ),
            (
                "multilingual: all cuts dense's error by ≥ 15 % (mean)",
                cut,
                15.0,
                cut is not None and cut >= 15,
            ),
            (
                "multilingual: dense+sparse ≥ dense (mean)",
                mean([value(new, t, "dense+sparse") for t in MULTILINGUAL]),
                mean([value(new, t, "dense") for t in MULTILINGUAL]),
                (mean([value(new, t, "dense+sparse") for t in MULTILINGUAL]) or 0)
                >= (mean([value(new, t, "dense") for t in MULTILINGUAL]) or 0),
            ),
            (
                f"dense ≥ {base_label} dense − 0.5 (mean of all retrieval sets)",
                mean([value(new, t, "dense") for t in (*ENGLISH, *MULTILINGUAL)]),
                mean([value(base, t, "dense") for t in (*ENGLISH, *MULTILINGUAL)]),
                (mean([value(new, t, "dense") for t in (*ENGLISH, *MULTILINGUAL)]) or 0)
                >= (mean([value(base, t, "dense") for t in (*ENGLISH, *MULTILINGUAL)]) or 0) - 0.5,
            ),
            (
                f"tatoeba F1 ≥ {base_label}",
                family_mean(new, "tatoeba-bitext"),
                family_mean(base, "tatoeba-bitext"),
                (family_mean(new, "tatoeba-bitext") or 0) >= (family_mean(base, "tatoeba-bitext") or 0),
            ),
            (
                "sparse ≥ 0.9 × BM25 (mean, non-English sets)",
                sparse_ratio,
                None if bm25_non_en is None else 0.9 * bm25_non_en,
                sparse_ratio is not None and bm25_non_en is not None and sparse_ratio >= 0.9 * bm25_non_en,
            ),
        ]
        nosd = runs.get("m3-small-nosd")
        if nosd is not None:
            with_sd = mean([value(new, t, "sparse") for t in (*ENGLISH, *MULTILINGUAL)])
            without = mean([value(nosd, t, "sparse") for t in (*ENGLISH, *MULTILINGUAL)])
            checks.append(
                (
                    "self-distillation lifts sparse (mean of all sets)",
                    with_sd,
                    without,
                    (with_sd or 0) > (without or 0),
                )
            )
        out += ["## Targets", "", "| target | value | against | met |", "|---|---|---|---|"]
        out += [
            f"| {name} | {cell(v)} | {cell(ref)} | "
            f"{'pending (a run is missing results)' if v is None or ref is None else 'yes' if ok else '**no**'} |"
            for name, v, ref, ok in checks
        ]
        out.append("")
        out += paired(new)
    text = "\n".join(out)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
