"""Summaries of result directories: a markdown table (per task, and per-type averages) and a PNG chart.

One directory gives one column per scoring mode; several directories (several models, or one model at
different settings) give one column per (run, mode), so modes and models compare side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.evaluation.evaluators.base import MODEL_MODES, RETRIEVAL_MODES, hybrid_fusion, parse_mode
from trivec.evaluation.significance import (
    EXACT_UP_TO,
    LEVEL,
    NO_PER_QUERY,
    ROUNDS,
    PairedDifference,
    PerQuery,
    read_per_query,
)
from trivec.evaluation.tasks import RANKING_TYPES, TaskType
from trivec.io import atomic_writer

TYPE_ORDER = [t.value for t in TaskType]


@dataclass
class Run:
    """The results of one directory, with the per-query values of those that keep them (checked once)."""

    label: str
    path: Path
    results: dict[str, dict[str, Any]]  # task name → result
    per_query: dict[str, PerQuery] = field(default_factory=dict)  # task name → its checked `per_query`

    @property
    def modes(self) -> list[str]:
        present = {m for r in self.results.values() for m in r["main_score"]["values"]}
        return [m for m in RETRIEVAL_MODES if m in present]

    @property
    def model(self) -> str:
        names = {str(r.get("model", {}).get("name")) for r in self.results.values()}
        return ", ".join(sorted(names))


def load_run(directory: str | os.PathLike[str], label: str | None = None) -> Run:
    """Every task result (`*.json` with a `main_score`) in a directory."""
    path = Path(directory)
    if not path.is_dir():
        raise InputError(f"{path}: results directory not found")
    results: dict[str, dict[str, Any]] = {}
    per_query: dict[str, PerQuery] = {}
    for file in sorted(path.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and "main_score" in data and "task" in data:
            try:
                block = read_per_query(data)
            except InputError as exc:
                raise InputError(f"{file}: {exc}") from None
            results[data["task"]["name"]] = data
            if block is not None:
                per_query[data["task"]["name"]] = block
    if not results:
        raise InputError(f"{path}: no task results (*.json written by `trivec eval`)")
    run = Run(label=label or path.name, path=path, results=results, per_query=per_query)
    if label is None and run.model and run.model != "None":
        run.label = run.model if len(run.model) <= 40 else path.name
    return run


def distinct_labels(runs: Sequence[Run]) -> None:
    """Give runs that share a label one each: the label with its folder (`m (a/eval)`), else its place in
    the list. Runs with distinct labels are left as they are, so a second call changes nothing."""
    labels = [r.label for r in runs]
    if len(set(labels)) == len(labels):
        return
    for run in runs:
        where = "/".join(part for part in (run.path.parent.name, run.path.name) if part)
        run.label = f"{run.label} ({where})"
    if len({r.label for r in runs}) < len(runs):
        for number, run in enumerate(runs, start=1):
            run.label = f"{run.label} #{number}"


def _series(runs: Sequence[Run]) -> list[tuple[Run, str, str]]:
    """(run, mode, column title) for every column."""
    distinct_labels(runs)
    columns = []
    for run in runs:
        for mode in run.modes:
            columns.append((run, mode, mode if len(runs) == 1 else f"{run.label} · {mode}"))
    return columns


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _task_rows(runs: Sequence[Run]) -> list[tuple[str, dict[str, Any]]]:
    """(task name, one result describing it), ordered by type then name."""
    seen: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, result in run.results.items():
            seen.setdefault(name, result)
    return sorted(seen.items(), key=lambda item: (TYPE_ORDER.index(item[1]["task"]["type"]), item[0]))


def type_averages(run: Run, mode: str, tasks_by_type: dict[str, list[str]]) -> dict[str, float]:
    """Per task type: the run's mean main score in `mode` over the report's tasks of that type, for the
    types whose every task it has (a mean over fewer tasks would not compare with the other columns)."""
    means = {}
    for kind, names in tasks_by_type.items():
        values = _values(run, mode, names)
        if values and len(values) == len(names):
            means[kind] = sum(values) / len(values)
    return means


def markdown(runs: Sequence[Run], paired_with: str = "dense") -> str:
    """The summary page: per-task main scores and per-type averages (× 100), then each mode against
    `paired_with`, paired per query (`paired_section`)."""
    columns = _series(runs)
    tasks = _task_rows(runs)
    lines = ["# Evaluation summary", ""]
    for run in runs:
        any_result = next(iter(run.results.values()))
        version = any_result.get("versions", {}).get("trivec", "?")
        seconds = sum(r.get("time", {}).get("total_seconds", 0.0) for r in run.results.values())
        fusions = sorted({f for f in map(hybrid_fusion, run.results.values()) if f is not None})
        fused = f"hybrids fused {' / '.join(fusions)}" if fusions else "no hybrid mode"
        lines.append(
            f"- **{run.label}**: model `{run.model}`, {len(run.results)} tasks, trivec {version}, "
            f"{fused}, {seconds / 60:.1f} min of evaluation (`{run.path}`)"
        )
    lines += ["", "Main score × 100 (retrieval nDCG@10, reranking MAP, STS cosine Spearman, pair classification "
              "max AP or max accuracy (zh, as C-MTEB), classification accuracy, clustering V-measure, bitext F1). "
              "Task types other than retrieval and reranking are scored on the dense embedding.", ""]  # fmt: skip
    header = ["task", "type", "lang", "metric", *[c[2] for c in columns]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 4 + ["---:"] * len(columns)) + "|")
    for name, result in tasks:
        task = result["task"]
        cells = [name, task["type"], "-".join(task["languages"]), result["main_score"]["metric"]]
        for run, mode, _ in columns:
            value = run.results.get(name, {}).get("main_score", {}).get("values", {}).get(mode)
            cells.append(_fmt(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines += average_rows(columns, tasks)
    return "\n".join(lines + paired_section(runs, paired_with))


def average_rows(columns: list[tuple[Run, str, str]], tasks: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The averages section: per task type and over all tasks, each column's mean over the report's tasks.
    A column that lacks some of them shows its mean with how many it covers (`40.00 (2 of 3)`) per type and
    no overall mean: means over different task sets do not compare."""
    lines = ["", "## Averages per task type", "", "| type | tasks | " + " | ".join(c[2] for c in columns) + " |",
             "|---|---:|" + "|".join(["---:"] * len(columns)) + "|"]  # fmt: skip
    kinds = {name: result["task"]["type"] for name, result in tasks}
    for kind in TYPE_ORDER:
        names = [name for name, k in kinds.items() if k == kind]
        if not names:
            continue
        cells = [kind, str(len(names))]
        for run, mode, _ in columns:
            values = _values(run, mode, names)
            partial = f" ({len(values)} of {len(names)})" if 0 < len(values) < len(names) else ""
            cells.append(_fmt(sum(values) / len(values)) + partial if values else "–")
        lines.append("| " + " | ".join(cells) + " |")
    overall = ["**all tasks**", str(len(tasks))]
    for run, mode, _ in columns:
        values = _values(run, mode, list(kinds))
        overall.append(_fmt(sum(values) / len(values)) if len(values) == len(kinds) else "–")
    lines.append("| " + " | ".join(overall) + " |")
    note = ("Averages are plain means of the tasks' main scores; \"all tasks\" (C-MTEB's overall average) is "
            "given only for columns that cover every task of the report.")  # fmt: skip
    return [*lines, "", note, ""]


def _values(run: Run, mode: str, names: Sequence[str]) -> list[float]:
    """The run's main scores in `mode` for those of `names` it has."""
    found = (run.results.get(name, {}).get("main_score", {}).get("values", {}).get(mode) for name in names)
    return [float(v) for v in found if v is not None]


PAIRED_NOTE = (
    f"Paired per query: the mean difference × 100 over a task's scored queries, its {100 * LEVEL:g} % "
    "paired-bootstrap interval, the paired randomization test's two-sided p, and how many queries score "
    f"differently (only they carry the test: with {EXACT_UP_TO} or fewer the p is exact and cannot fall below "
    "2 / 2^n, and the interval, drawn from few distinct values, is coarse — read the count and p first). "
    f"{ROUNDS:,} seeded rounds; p per comparison, not corrected for the many here. Runs are paired with the "
    "first in their model modes (BM25 does not depend on the model), by query id."
)
Rows = dict[str, tuple[str, dict[str, PairedDifference]]]


def paired_section(runs: Sequence[Run], baseline: str = "dense") -> list[str]:
    """Each ranking task's modes paired per query (`trivec.evaluation.significance`): per run, every mode
    against `baseline`; then every later run against the first, mode by mode, by query id. Whatever cannot
    be paired is named with why; nothing at all when no result keeps per-query values. `baseline` is read as
    `--modes` reads a mode (`hybrid` is `all`)."""
    baseline = parse_mode(baseline, "mode to pair with")
    if not any(run.per_query for run in runs):
        return []
    lines = ["## Paired per query", "", PAIRED_NOTE, ""]
    for run in runs:
        if run.per_query:
            rows, left_out = _pair_tasks(run, lambda name, block: block.against(baseline),
                                         lambda name, block: _why_not_paired(block, baseline))  # fmt: skip
            lines += _paired_table(f"{run.label}: each mode against {baseline}", rows, left_out,
                                   lambda mode: f"{mode} − {baseline}")  # fmt: skip
    first = runs[0]
    for run in runs[1:]:
        if not (first.per_query and run.per_query):
            missing = [r.label for r in (first, run) if not r.per_query]
            verb = "keeps" if len(missing) == 1 else "keep"
            lines += [f"{run.label} is not paired with {first.label}: {' and '.join(missing)} {verb} no per-query "
                      "values.", ""]  # fmt: skip
            continue
        rows, left_out = _pair_tasks(
            run,
            lambda name, block: _model_modes(block.paired_with(first.per_query.get(name))),
            lambda name, block: _why_runs_not_paired(name, block, first),
        )
        for name in sorted(set(first.results) - set(run.results)):
            if first.results[name]["task"]["type"] in RANKING_TYPES:
                left_out[name] = f"not in {run.label}"
        header = _column_header(run.label, first.label)
        lines += _paired_table(f"{run.label} against {first.label}, mode by mode", rows, left_out, header)
    return lines


def _column_header(later: str, first: str) -> Callable[[str], str]:
    """A column's title where a later run is paired with the first: `m3-small dense − e5 dense`."""
    return lambda mode: f"{later} {mode} − {first} {mode}"


def _model_modes(differences: dict[str, PairedDifference]) -> dict[str, PairedDifference]:
    """The model modes of a pairing of two runs (BM25 does not depend on the model)."""
    return {mode: d for mode, d in differences.items() if mode in MODEL_MODES}


def _why_not_paired(block: PerQuery | None, baseline: str) -> str:
    if block is None:
        return NO_PER_QUERY
    return f"only {baseline} was scored" if set(block.values) == {baseline} else f"no {baseline} values"


def _why_runs_not_paired(name: str, block: PerQuery | None, first: Run) -> str:
    if name not in first.results:
        return f"not in {first.label}"
    if block is None:
        return NO_PER_QUERY
    problem = block.problem_with(first.per_query.get(name), f"{first.label}'s result")
    return problem or "no model mode in common"


def _pair_tasks(
    run: Run,
    pair: Callable[[str, PerQuery], dict[str, PairedDifference]],
    why_not: Callable[[str, PerQuery | None], str],
) -> tuple[Rows, dict[str, str]]:
    """The run's ranking tasks paired by `pair` (called for those that keep per-query values): rows of
    (metric, differences), and the tasks that could not be paired, with why (`why_not`)."""
    rows: Rows = {}
    left_out: dict[str, str] = {}
    for name, result in sorted(run.results.items()):
        if result["task"]["type"] not in RANKING_TYPES:
            continue
        block = run.per_query.get(name)
        if block is not None and (differences := pair(name, block)):
            rows[name] = (block.metric, differences)
        else:
            left_out[name] = why_not(name, block)
    return rows, left_out


def _paired_table(
    title: str, rows: Rows, left_out: dict[str, str], header: Callable[[str], str]
) -> list[str]:
    """One paired table: tasks as rows, modes as columns, then the tasks left out with why."""
    lines = [f"### {title}", ""]
    if rows:
        present = dict.fromkeys([*RETRIEVAL_MODES, *sorted({m for _, d in rows.values() for m in d})])
        modes = [m for m in present if any(m in d for _, d in rows.values())]
        lines += ["| task | metric | queries | " + " | ".join(header(m) for m in modes) + " |",
                  "|---|---|---:|" + "|".join(["---:"] * len(modes)) + "|"]  # fmt: skip
        for name, (metric, differences) in rows.items():
            count = next(iter(differences.values())).queries
            cells = [differences[m].describe() if m in differences else "–" for m in modes]
            lines.append(f"| {name} | {metric} | {count} | " + " | ".join(cells) + " |")
        lines.append("")
    if left_out:
        lines += ["Not paired: " + "; ".join(f"{name} ({why})" for name, why in left_out.items()) + ".", ""]
    return lines


def chart(runs: Sequence[Run], path: str | os.PathLike[str]) -> Path:
    """PNG: per-type averages (left) and per-task retrieval/reranking scores (right), one bar per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = _series(runs)
    by_type: dict[str, list[str]] = {}
    for name, result in _task_rows(runs):
        by_type.setdefault(result["task"]["type"], []).append(name)
    kinds = [k for k in TYPE_ORDER if k in by_type]
    ranking_tasks = [name for name, result in _task_rows(runs) if result["task"]["type"] in RANKING_TYPES]
    panels = 2 if ranking_tasks else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.8), squeeze=False)
    width = 0.8 / max(len(columns), 1)
    colors = plt.get_cmap("tab20")
    ax = axes[0][0]
    for i, (run, mode, title) in enumerate(columns):
        averages = type_averages(run, mode, by_type)
        xs = [k for k, kind in enumerate(kinds) if kind in averages]
        ax.bar(
            np.array(xs) + (i - (len(columns) - 1) / 2) * width,
            [100 * averages[kinds[k]] for k in xs],
            width,
            label=title,
            color=colors(i % 20),
        )
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, rotation=25, ha="right")
    ax.set_ylabel("mean main score × 100")
    ax.set_title("Per task type (columns that have every task of the type)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if ranking_tasks:
        ax = axes[0][1]
        for i, (run, mode, title) in enumerate(columns):
            values = [
                run.results.get(t, {}).get("main_score", {}).get("values", {}).get(mode)
                for t in ranking_tasks
            ]
            xs = [k for k, v in enumerate(values) if v is not None]
            ax.bar(
                np.array(xs) + (i - (len(columns) - 1) / 2) * width,
                [100 * values[k] for k in xs],
                width,
                label=title,
                color=colors(i % 20),
            )
        ax.set_xticks(range(len(ranking_tasks)))
        ax.set_xticklabels(ranking_tasks, rotation=25, ha="right")
        ax.set_ylabel("nDCG@10 (retrieval) / MAP (reranking) × 100")
        ax.set_title("Retrieval and reranking, per mode")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(
    directories: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    paired_with: str = "dense",
) -> tuple[Path, Path]:
    """Write `summary.md` and `summary.png` for one or more result directories into `output` (each mode
    paired per query with `paired_with`)."""
    if labels is not None and len(labels) != len(directories):
        raise InputError(f"{len(labels)} labels for {len(directories)} result directories")
    folders = [Path(d).resolve() for d in directories]
    twice = sorted({str(f) for f in folders if folders.count(f) > 1})
    if twice:
        raise InputError(f"result directory given twice: {', '.join(twice)}")
    runs = [load_run(d, labels[i] if labels else None) for i, d in enumerate(directories)]
    distinct_labels(runs)
    text = markdown(runs, paired_with)  # before anything is written: a bad mode leaves no half report
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "summary.md"
    with atomic_writer(md) as handle:
        handle.write(text)
    png = chart(runs, out / "summary.png")
    return md, png
