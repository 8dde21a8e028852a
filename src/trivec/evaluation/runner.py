"""`evaluate`: run tasks with a model, write one JSON per task and a summary (markdown + PNG)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from trivec.errors import InputError
from trivec.evaluation.bm25 import Bm25Config
from trivec.evaluation.data import load_task
from trivec.evaluation.encoding import TextEncoder, describe_model, precision
from trivec.evaluation.evaluators import EVALUATORS, EvalSettings, parse_modes
from trivec.evaluation.evaluators.base import HYBRID_MODES
from trivec.evaluation.registry import builtin_tasks, task_from_dir
from trivec.evaluation.tasks import RANKING_TYPES, Task, select_tasks
from trivec.inference import Embedder
from trivec.inference.loading import ModelLike, load_embedder
from trivec.inference.scoring import normalize_weights
from trivec.io import atomic_writer
from trivec.models.prompts import ROLES, check_prompts
from trivec.models.weights import FusionDefaults, check_fusion, fusion_to_use

# 2: ranking tasks keep each query's main score per mode (`per_query`); `resume` re-runs a format-1 result
RESULT_FORMAT = 2
TaskSpec = str | Task | os.PathLike[str]


def versions() -> dict[str, str]:
    """Versions of everything that can change a number."""
    out = {"python": platform.python_version()}
    for name in (
        "trivec",
        "torch",
        "transformers",
        "tokenizers",
        "numpy",
        "scipy",
        "scikit-learn",
        "pytrec-eval-terrier",
        "bm25s",
        "PyStemmer",
        "faiss-cpu",
    ):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def resolve_tasks(
    tasks: TaskSpec | Sequence[TaskSpec] | None,
    data_dir: str | os.PathLike[str] | None = None,
    languages: Sequence[str] | None = None,
) -> list[Task]:
    """Task objects from names (`all`, task, folder, `type:<type>`), `Task`s, or directories (as `--task-dir`)."""
    if tasks is None:
        tasks = "all"
    items: list[TaskSpec] = (
        [tasks] if isinstance(tasks, (str, Task)) or not isinstance(tasks, Sequence) else list(tasks)
    )
    names: list[str] = []
    out: list[Task] = []
    for item in items:
        if isinstance(item, Task):
            out.append(item)
        elif isinstance(item, os.PathLike):
            out.extend(task_from_dir(item))
        else:
            names.extend(n.strip() for n in str(item).split(",") if n.strip())
    if names:
        out.extend(select_tasks(names, builtin_tasks(data_dir)))
    if languages:
        wanted = set(languages)
        out = [t for t in out if set(t.languages) <= wanted]
    seen: dict[str, Task] = {}
    for task in out:
        if task.name in seen and seen[task.name] != task:
            raise InputError(f"two different tasks are named {task.name!r}; rename one folder")
        seen.setdefault(task.name, task)
    if not seen:
        raise InputError("no task selected (check --tasks / --languages)")
    return list(seen.values())


def _role_prompts(value: Mapping[str, str] | None, where: str) -> dict[str, str]:
    prompts = check_prompts(value or {}, where)
    unknown = set(prompts) - set(ROLES)
    if unknown:
        raise InputError(
            f"{where}: prompts are given per role ({', '.join(ROLES)}), not {', '.join(sorted(unknown))}"
        )
    return prompts


def _prompts_for(
    task: Task, prompts: dict[str, str], task_prompts: Mapping[str, dict[str, str]]
) -> dict[str, str]:
    """The prompt overrides of one task: its own (by task or folder name) over the run's; none off retrieval
    and reranking, whose texts play no query/document role."""
    if task.type not in RANKING_TYPES:
        return {}
    own = task_prompts.get(task.name, task_prompts.get(task.path.name, {}))
    return {**prompts, **own}


def _effective_prompts(task: Task, settings: EvalSettings, embedder: Embedder | None) -> dict[str, str]:
    """The texts put before the task's texts, by role (`text`: every text of a task without roles)."""
    if embedder is None:
        return {}
    if task.type in RANKING_TYPES:
        return {role: embedder.resolve_prompt(role, settings.prompts.get(role)) for role in ROLES}
    return {"text": embedder.resolve_prompt()}


def evaluate(
    model_or_embedder: ModelLike,
    tasks: TaskSpec | Sequence[TaskSpec] | None = "all",
    output_dir: str | os.PathLike[str] | None = None,
    modes: str | Sequence[str] | None = None,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    prompts: Mapping[str, str] | None = None,
    batch_tokens: int | None = None,
    *,
    fusion: str | None = None,
    dtype: str | None = None,
    task_prompts: Mapping[str, Mapping[str, str]] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    languages: Sequence[str] | None = None,
    max_length: int | None = None,
    top_k: int = 1000,
    rerank_k: int = 100,
    seed: int = 42,
    model_name: str | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    report: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate a model on tasks; returns one result dict per task (also written to `output_dir`).

    model_or_embedder: an `Embedder`, an `M3Model`, or a model name/directory (`default` = m3-small).
    tasks: `all`, comma-separated names (task, folder, `type:<type>`), `Task` objects, or directories.
    modes: retrieval/reranking scoring modes (default: dense, sparse, colbert, dense+sparse, all, bm25); modes
        the model has no head for are skipped with a note. Other task types use the dense embedding.
    weights: hybrid weights (dense, sparse, colbert); default: the model's own, else 0.4 / 0.2 / 0.4.
    fusion: how hybrids combine their modes' scores: `weighted` (the weighted mean of the scores, as M3),
        `rrf`, `zscore` or `auto` (`trivec.retrieval.fusion`); default: the model's own, else `weighted`.
    prompts: `{"query": ..., "document": ...}` — texts put before the queries / corpus texts of retrieval
        and reranking tasks instead of the model's prompts of those roles (either may be absent; '' = none).
        The texts of the other task types get the model's default prompt, if it has one.
    task_prompts: `{task or folder name: {"query": ..., "document": ...}}`, over `prompts` for that task.
    dtype: encoder precision when the model is loaded here (`float32` default, `bfloat16`: ≈ 5× faster on
        AMX CPUs, `auto`: bfloat16 where it is native, `trivec.inference.precision`; the precision used is
        recorded with every result).
    resume: keep the results already in `output_dir` for tasks of the same model and settings (returned
        with `"resumed": True`; the files are left as they are) and evaluate the others.
    overwrite: replace results already in `output_dir`; without it or `resume`, a task result there is an
        error before anything loads (a run with other modes or another model would replace it unasked).
    progress: progress bars on stderr, when it is a terminal.
    """
    selected = resolve_tasks(tasks, data_dir, languages)
    progress = progress and sys.stderr.isatty()  # bars redrawn with \r are noise in a log file
    run_prompts = _role_prompts(prompts, "prompts")
    per_task = _task_prompts(task_prompts, selected)
    mode_list, weight_map = _checked_options(modes, weights, fusion, top_k, rerank_k)
    out_dir = Path(output_dir) if output_dir is not None else None
    if out_dir is not None:
        _check_output_dir(out_dir, selected, resume or overwrite)
    base = EvalSettings(modes=mode_list, weights=weight_map, top_k=top_k, rerank_k=rerank_k, seed=seed)
    needs_model = any(EVALUATORS[t.type](base).needs_model() for t in selected)
    embedder = (
        load_embedder(model_or_embedder, batch_tokens=batch_tokens, dtype=dtype) if needs_model else None
    )
    model_info = describe_model(embedder, model_name) if embedder is not None else {"name": model_name}
    if model_name is None and isinstance(model_or_embedder, (str, os.PathLike)):
        model_info["name"] = str(model_or_embedder)
    encoder = (
        TextEncoder(embedder, max_length=max_length, batch_tokens=batch_tokens, progress=progress)
        if embedder is not None
        else None
    )
    fusion_used = _fusion(embedder, weights, weight_map, fusion, mode_list)
    env = versions()
    results: list[dict[str, Any]] = []
    bar = tqdm(selected, desc="tasks", unit="task", disable=not progress, file=sys.stderr)
    for task in bar:
        bar.set_postfix_str(task.name)
        # a task in one language fuses with the model's weights for it, where it has some and none are given
        task_fusion = fusion_used.for_language(task.language if len(task.languages) == 1 else None)
        settings = EvalSettings(
            modes=mode_list,
            weights=task_fusion.weights,
            # only retrieval and reranking fuse modes: the other tasks record (and resume on) no fusion
            fusion=fusion_used.method if task.type in RANKING_TYPES else "weighted",
            spreads=fusion_used.spreads if task.type in RANKING_TYPES else None,
            prompts=_prompts_for(task, run_prompts, per_task),
            top_k=top_k,
            rerank_k=rerank_k,
            seed=seed,
            bm25=Bm25Config(),
        )
        public = _recorded_settings(task, settings, embedder, model_info, max_length, batch_tokens)
        target = out_dir / f"{task.name}.json" if out_dir is not None else None
        previous = _resumable(target, model_info, public) if resume and target is not None else None
        if previous is not None:
            results.append({**previous, "resumed": True})
            continue
        results.append(_run_task(task, settings, encoder, model_info, public, env, target))
    bar.close()
    if out_dir is not None and report:
        from trivec.evaluation.report import write_report

        write_report([out_dir], out_dir)
    return results


def _checked_options(
    modes: str | Sequence[str] | None,
    weights: Mapping[str, float] | Sequence[float] | None,
    fusion: str | None,
    top_k: int,
    rerank_k: int,
) -> tuple[tuple[str, ...], dict[str, float]]:
    """The modes and weights of a run, checked with its fusion and depths before a model loads (`_fusion`
    checks the fusion against the model's spreads later)."""
    if top_k < 1:
        raise InputError(f"top_k must be ≥ 1, got {top_k}", cli=f"--top-k must be ≥ 1, got {top_k}")
    if rerank_k < 0:
        raise InputError(
            f"rerank_k must be ≥ 0, got {rerank_k}", cli=f"--rerank-k must be ≥ 0, got {rerank_k}"
        )
    if fusion is not None:
        check_fusion(fusion)
    mode_list = parse_modes(modes)
    try:
        return mode_list, normalize_weights(weights)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_output_dir(out_dir: Path, tasks: Sequence[Task], replacing: bool) -> None:
    """Create the results directory; refuse a file there, and task results already there unless `replacing`
    (`resume` / `overwrite`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} is a file; the output is a directory for the results")
    kept = [t.name for t in tasks if (out_dir / f"{t.name}.json").is_file()]
    if kept and not replacing:
        named = ", ".join(kept[:3]) + (f" and {len(kept) - 3} more" if len(kept) > 3 else "")
        raise InputError(
            f"{out_dir} holds results of {named} already: resume=True keeps those of the same model and "
            "settings, overwrite=True replaces them",
            cli=f"{out_dir} holds results of {named} already: --resume keeps those of the same model and "
            "settings, --overwrite replaces them",
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def _fusion(
    embedder: Embedder | None,
    weights: Mapping[str, float] | Sequence[float] | None,
    given: dict[str, float],
    fusion: str | None,
    modes: Sequence[str],
) -> FusionDefaults:
    """The weights and fusion the hybrids use: those given, else the model's (auto fusion with its spreads,
    its weights per language). Auto fusion without spreads is refused where something is fused: a hybrid mode
    of a multi-output model."""
    model = embedder.fusion_defaults if embedder is not None else FusionDefaults(given)
    fuses = embedder is not None and len(embedder.available_modes()) > 1
    hybrid = any(m in HYBRID_MODES for m in modes)
    method = fusion_to_use(fusion, model.method, model.spreads, fused=fuses and hybrid)
    if weights is not None:
        return FusionDefaults(given, method, model.spreads)
    return FusionDefaults(model.weights, method, model.spreads, model.by_language)


def _recorded_settings(
    task: Task,
    settings: EvalSettings,
    embedder: Embedder | None,
    model_info: dict[str, Any],
    max_length: int | None,
    batch_tokens: int | None,
) -> dict[str, Any]:
    """The settings written with a task's result (and compared by `resume`): the evaluator's, the prompts
    used and how the texts were encoded."""
    return {
        **settings.public(),
        "prompts": _effective_prompts(task, settings, embedder),
        "max_length": max_length or model_info.get("max_length"),
        "batch_tokens": batch_tokens or (embedder.batch_tokens if embedder is not None else None),
        "dtype": precision(embedder) if embedder else None,
    }


def _task_prompts(
    task_prompts: Mapping[str, Mapping[str, str]] | None, selected: Sequence[Task]
) -> dict[str, dict[str, str]]:
    """The per-task prompt overrides, checked: by role, and only for tasks (or folders) that were selected."""
    per_task = {
        str(name): _role_prompts(value, f"prompts of task {name}")
        for name, value in (task_prompts or {}).items()
    }
    unknown = set(per_task) - {t.name for t in selected} - {t.path.name for t in selected}
    if unknown:
        raise InputError(f"prompts given for task(s) not selected: {', '.join(sorted(unknown))}")
    return per_task


def _resumable(target: Path, model_info: dict[str, Any], public: dict[str, Any]) -> dict[str, Any] | None:
    """The result already at `target` when it is of the same model and settings (kept by `resume`), else None."""
    if not target.is_file():
        return None
    previous = _read_previous(target)
    if (
        previous
        and previous.get("model", {}).get("name") == model_info.get("name")
        and previous.get("settings") == json.loads(json.dumps(public))
    ):
        return previous
    return None


def _read_previous(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == RESULT_FORMAT else None


def _run_task(
    task: Task,
    settings: EvalSettings,
    encoder: TextEncoder | None,
    model_info: dict[str, Any],
    public: dict[str, Any],
    env: dict[str, str],
    target: Path | None,
) -> dict[str, Any]:
    started = time.perf_counter()
    data = load_task(task)
    loaded = time.perf_counter()
    before = (encoder.texts_encoded, encoder.tokens_encoded) if encoder is not None else (0, 0)
    evaluator = EVALUATORS[task.type](settings)
    outcome = evaluator.evaluate(task, data, encoder if evaluator.needs_model() else None)
    finished = time.perf_counter()
    result: dict[str, Any] = {
        "format": RESULT_FORMAT,
        "task": task.summary(),
        "main_score": {
            "metric": task.main_score,
            "values": {mode: scores[task.main_score] for mode, scores in outcome.scores.items()},
        },
        "scores": outcome.scores,
        **per_query_block(task.main_score, outcome.per_query),
        "skipped_modes": outcome.skipped,
        "details": outcome.details,
        "settings": public,
        "model": model_info,
        "versions": env,
        "encoded": {
            "texts": (encoder.texts_encoded - before[0]) if encoder is not None else 0,
            "tokens": (encoder.tokens_encoded - before[1]) if encoder is not None else 0,
        },
        "time": {
            "load_seconds": round(loaded - started, 3),
            "evaluate_seconds": round(finished - loaded, 3),
            "total_seconds": round(finished - started, 3),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    result = json.loads(json.dumps(result, default=_json_default))
    if target is not None:
        with atomic_writer(target) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
    return result


def per_query_block(metric: str, per_query: dict[str, dict[str, float]]) -> dict[str, Any]:
    """`{"per_query": {"metric", "query_ids", "values": {mode: [value per query id]}}}` (values to 6
    decimals), or nothing when the task type keeps no per-query values."""
    if not per_query:
        return {}
    query_ids = sorted(next(iter(per_query.values())))
    values = {mode: [round(by_query[q], 6) for q in query_ids] for mode, by_query in per_query.items()}
    return {"per_query": {"metric": metric, "query_ids": query_ids, "values": values}}


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
