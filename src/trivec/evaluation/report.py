"""Summaries of result directories: a markdown table (per task, and per-type averages) and a PNG chart.

One directory gives one column per scoring mode; several directories (several models, or one model at
different settings) give one column per (run, mode), so modes and models compare side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.evaluation.evaluators.base import RETRIEVAL_MODES
from trivec.evaluation.significance import (
    PairedDifference,
    mode_differences,
    per_query_values,
    run_differences,
)
from trivec.evaluation.tasks import TaskType
from trivec.io import atomic_writer

TYPE_ORDER = [t.value for t in TaskType]


@dataclass
class Run:
    """The results of one directory."""

    label: str
    path: Path
    results: dict[str, dict[str, Any]]  # task name → result

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
    for file in sorted(path.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and "main_score" in data and "task" in data:
            try:
                per_query_values(data)
            except InputError as exc:
                raise InputError(f"{file}: {exc}") from None
            results[data["task"]["name"]] = data
    if not results:
        raise InputError(f"{path}: no task results (*.json written by `trivec eval`)")
    run = Run(label=label or path.name, path=path, results=results)
    if label is None and run.model and run.model != "None":
        run.label = run.model if len(run.model) <= 40 else path.name
    return run


def _series(runs: Sequence[Run]) -> list[tuple[Run, str, str]]:
    """(run, mode, column title) for every column."""
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        for r in runs:
            r.label = f"{r.label} ({r.path.name})"
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


def type_averages(run: Run, mode: str) -> dict[str, tuple[float, int]]:
    """Per task type: (mean main score over the run's tasks that have `mode`, number of tasks)."""
    by_type: dict[str, list[float]] = {}
    for result in run.results.values():
        value = result["main_score"]["values"].get(mode)
        if value is not None:
            by_type.setdefault(result["task"]["type"], []).append(float(value))
    return {t: (sum(v) / len(v), len(v)) for t, v in by_type.items()}


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
        fusions = sorted({r.get("settings", {}).get("fusion", "weighted") for r in run.results.values()})
        lines.append(
            f"- **{run.label}**: model `{run.model}`, {len(run.results)} tasks, trivec {version}, "
            f"hybrids fused {' / '.join(fusions)}, {seconds / 60:.1f} min of evaluation (`{run.path}`)"
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
    "Mean difference × 100 over the task's scored queries, its 95 % paired-bootstrap interval, the paired "
    "randomization test's two-sided p and how many queries score differently (only they carry the test: with "
    "16 or fewer the p is exact and cannot fall below 2 / 2^n, and the interval, drawn from few distinct "
    "values, is coarse — read the count and p first). 10,000 seeded rounds; p per comparison, not corrected "
    "for the many here."
)


def paired_section(runs: Sequence[Run], baseline: str = "dense") -> list[str]:
    """Each ranking task's modes paired per query (`trivec.evaluation.significance`): per run, every mode
    against `baseline`; then every later run against the first, mode by mode (same queries). Only runs with
    per-query values take part; their tasks without them are named with why."""
    if baseline not in RETRIEVAL_MODES:
        raise InputError(f"modes are paired with one of {', '.join(RETRIEVAL_MODES)}, not {baseline!r}")
    lines: list[str] = []
    kept = [run for run in runs if any(r.get("per_query") for r in run.results.values())]
    for run in kept:
        rows, left_out = _pair_tasks(
            run,
            lambda name, result: mode_differences(result, baseline),
            lambda result, _: f"no {baseline} values",
        )
        lines += _paired_table(f"{run.label}: each mode against {baseline}, paired per query", rows, left_out,
                               lambda mode: f"{mode} − {baseline}")  # fmt: skip
    if kept and kept[0] is runs[0]:
        first = runs[0].results
        for run in kept[1:]:
            rows, left_out = _pair_tasks(
                run,
                lambda name, result: _model_modes(run_differences(result, first[name])) if name in first else None,
                lambda result, name: "other queries, or no mode in common" if first[name].get("per_query") else
                "no per-query values in the first run",
            )  # fmt: skip
            lines += _paired_table(f"{run.label} against {runs[0].label}, mode by mode, paired per query", rows,
                                   left_out, lambda mode: f"{mode} − {runs[0].label}'s")  # fmt: skip
    return lines


def _model_modes(differences: dict[str, PairedDifference]) -> dict[str, PairedDifference]:
    """The model modes of a pairing of two runs (BM25 does not depend on the model)."""
    return {mode: d for mode, d in differences.items() if mode != "bm25"}


def _pair_tasks(
    run: Run,
    pair: Callable[[str, dict[str, Any]], dict[str, PairedDifference] | None],
    why_not: Callable[[dict[str, Any], str], str],
) -> tuple[dict[str, tuple[str, dict[str, PairedDifference]]], dict[str, str]]:
    """The run's ranking tasks paired by `pair` (None: nothing to pair it with, left out silently): rows of
    (metric, differences), and the tasks that could not be paired, with why (`why_not`, or no per-query
    values of their own)."""
    rows: dict[str, tuple[str, dict[str, PairedDifference]]] = {}
    left_out: dict[str, str] = {}
    for name, result in sorted(run.results.items()):
        if result["task"]["type"] not in ("retrieval", "reranking"):
            continue
        differences = pair(name, result)
        if differences:
            rows[name] = (result["per_query"]["metric"], differences)
        elif differences is not None:
            own = "no per-query values (written before they were kept)"
            left_out[name] = why_not(result, name) if result.get("per_query") else own
    return rows, left_out


def _paired_table(
    title: str,
    rows: dict[str, tuple[str, dict[str, PairedDifference]]],
    left_out: dict[str, str],
    header: Callable[[str], str],
) -> list[str]:
    """One paired section: tasks as rows, modes as columns; nothing when there is no row and no task left out."""
    if not rows and not left_out:
        return []
    lines = [f"## {title}", "", PAIRED_NOTE, ""]
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
    kinds = [k for k in TYPE_ORDER if any(k in type_averages(r, m) for r, m, _ in columns)]
    ranking_tasks = [
        name for name, result in _task_rows(runs) if result["task"]["type"] in ("retrieval", "reranking")
    ]
    panels = 2 if ranking_tasks else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.8), squeeze=False)
    width = 0.8 / max(len(columns), 1)
    colors = plt.get_cmap("tab20")
    ax = axes[0][0]
    for i, (run, mode, title) in enumerate(columns):
        averages = type_averages(run, mode)
        xs = [k for k, kind in enumerate(kinds) if kind in averages]
        ax.bar(
            np.array(xs) + (i - (len(columns) - 1) / 2) * width,
            [100 * averages[kinds[k]][0] for k in xs],
            width,
            label=title,
            color=colors(i % 20),
        )
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, rotation=25, ha="right")
    ax.set_ylabel("mean main score × 100")
    ax.set_title("Per task type")
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
    runs = [load_run(d, labels[i] if labels else None) for i, d in enumerate(directories)]
    text = markdown(runs, paired_with)  # before anything is written: a bad mode leaves no half report
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "summary.md"
    with atomic_writer(md) as handle:
        handle.write(text)
    png = chart(runs, out / "summary.png")
    return md, png
