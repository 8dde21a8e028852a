"""Summaries of result directories: a markdown table (per task, and per-type averages) and a PNG chart.

One directory gives one column per scoring mode; several directories (several models, or one model at
different settings) give one column per (run, mode), so modes and models compare side by side.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.evaluation.evaluators.base import RETRIEVAL_MODES
from trivec.evaluation.significance import mode_differences, per_query_values
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
    lines += ["", "## Averages per task type", ""]
    lines.append("| type | tasks | " + " | ".join(c[2] for c in columns) + " |")
    lines.append("|---|---:|" + "|".join(["---:"] * len(columns)) + "|")
    averages = {(id(run), mode): type_averages(run, mode) for run, mode, _ in columns}
    for kind in TYPE_ORDER:
        counts = {averages[(id(r), m)].get(kind, (0.0, 0))[1] for r, m, _ in columns}
        if not any(counts):
            continue
        cells = [kind, str(max(counts))]
        for run, mode, _ in columns:
            entry = averages[(id(run), mode)].get(kind)
            cells.append(_fmt(entry[0]) if entry else "–")
        lines.append("| " + " | ".join(cells) + " |")
    overall = ["**all tasks**", ""]
    for run, mode, _ in columns:
        values = [
            r["main_score"]["values"][mode] for r in run.results.values() if mode in r["main_score"]["values"]
        ]
        full = len(values) == len(run.results)
        overall.append(_fmt(sum(values) / len(values)) if values and full else "–")
    overall[1] = str(max(len(r.results) for r in runs))
    lines.append("| " + " | ".join(overall) + " |")
    lines += ["", "Averages are plain means of the tasks' main scores; \"all tasks\" (C-MTEB's overall average) is "
              "given only for columns that cover every task.", ""]  # fmt: skip
    return "\n".join(lines + paired_section(runs, paired_with))


def paired_section(runs: Sequence[Run], baseline: str = "dense") -> list[str]:
    """Per run, every ranking task's other modes against `baseline`, paired over its queries: mean
    difference × 100, 95 % bootstrap interval, randomization-test p (`trivec.evaluation.significance`).
    Nothing for runs whose results keep no per-query values."""
    if baseline not in RETRIEVAL_MODES:
        raise InputError(f"modes are paired with one of {', '.join(RETRIEVAL_MODES)}, not {baseline!r}")
    lines: list[str] = []
    for run in runs:
        rows = []
        for name, result in sorted(run.results.items()):
            differences = mode_differences(result, baseline)
            if differences:
                rows.append((name, result["per_query"]["metric"], differences))
        if not rows:
            if any(r.get("per_query") for r in run.results.values()):
                lines += [
                    f"No result of {run.label} has per-query values of {baseline}: nothing to pair.",
                    "",
                ]
            continue
        present = dict.fromkeys([*RETRIEVAL_MODES, *sorted({m for _, _, d in rows for m in d})])
        modes = [m for m in present if m != baseline and any(m in d for _, _, d in rows)]
        lines += [f"## {run.label}: each mode against {baseline}, paired per query", "",
                  f"Mean of (mode − {baseline}) × 100 over the task's scored queries, its 95 % paired-bootstrap "
                  "interval and the paired randomization test's two-sided p (10,000 rounds each, seeded).", "",
                  "| task | metric | queries | " + " | ".join(modes) + " |",
                  "|---|---|---:|" + "|".join(["---:"] * len(modes)) + "|"]  # fmt: skip
        for name, metric, differences in rows:
            count = next(iter(differences.values())).queries
            cells = [differences[m].describe() if m in differences else "–" for m in modes]
            lines.append(f"| {name} | {metric} | {count} | " + " | ".join(cells) + " |")
        lines.append("")
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
