"""`trivec eval` and `trivec eval-report` (heavy imports stay inside the commands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from trivec.cli.common import (
    DEFAULT_DTYPE,
    BackendOption,
    DocumentPromptOption,
    DtypeOption,
    FusionOption,
    OnnxFileOption,
    QueryPromptOption,
    WeightsOption,
    check_dtype_option,
    clean_errors,
    fail,
    parse_weights,
    prompt_overrides,
)
from trivec.inference.choices import check_backend
from trivec.progress import is_quiet


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the `trivec` app."""

    @app.command("eval")
    @clean_errors
    def eval_command(
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="Directory for <task>.json, summary.md/png (required unless --list-tasks).",
            ),
        ] = None,
        model: Annotated[
            str, typer.Option("--model", "-m", help="Model directory, hub id, or 'default'.")
        ] = ("default"),
        tasks: Annotated[
            str,
            typer.Option(
                "--tasks", "-t", help="'all', or comma-separated task / folder names, or type:<task type>."
            ),
        ] = "all",
        task_dir: Annotated[
            list[Path] | None,
            typer.Option("--task-dir", help="Evaluate a folder in the shared-data layout (repeatable)."),
        ] = None,
        task_type: Annotated[
            str | None,
            typer.Option("--task-type", help="Type of the --task-dir folders (default: inferred)."),
        ] = None,
        language: Annotated[
            str | None,
            typer.Option(
                "--language",
                help="ISO 639-1 language of the --task-dir folders, e.g. ja (default: a tasks.tsv beside the "
                "folder; rows with a 'lang' field give one task per language).",
            ),
        ] = None,
        languages: Annotated[
            str | None,
            typer.Option("--languages", help="Keep tasks whose languages all lie in this list, e.g. en,zh."),
        ] = None,
        modes: Annotated[
            str,
            typer.Option(help="Retrieval/reranking modes: dense,sparse,colbert,dense+sparse,all,bm25."),
        ] = "dense,sparse,colbert,dense+sparse,all,bm25",
        weights: WeightsOption = None,
        fusion: FusionOption = None,
        query_prompt: QueryPromptOption = None,
        document_prompt: DocumentPromptOption = None,
        prompts_file: Annotated[
            Path | None,
            typer.Option(
                "--prompts-file",
                help='Per-task prompts: JSON {task name: {"query": ..., "document": ...}} (a string is the '
                "query prompt); over --query-prompt / --document-prompt for those tasks.",
            ),
        ] = None,
        batch_tokens: Annotated[int | None, typer.Option(help="Padded tokens per encoder batch.")] = None,
        dtype: DtypeOption = DEFAULT_DTYPE,
        max_length: Annotated[
            int | None, typer.Option(help="Truncate texts (default: the model's limit).")
        ] = None,
        top_k: Annotated[int, typer.Option(help="Documents retrieved per query.")] = 1000,
        rerank_k: Annotated[int, typer.Option(help="Dense candidates ColBERT / 'all' re-rank.")] = 100,
        seed: Annotated[int, typer.Option(help="Seed of classification draws and clustering.")] = 42,
        data_dir: Annotated[
            Path | None, typer.Option(help="Folder of the built-in tasks (default ../shared/data).")
        ] = None,
        resume: Annotated[
            bool,
            typer.Option(
                "--resume", help="Keep the task results in --output of the same model and settings."
            ),
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace task results already in --output.")
        ] = False,
        list_tasks: Annotated[bool, typer.Option("--list-tasks", help="List the tasks and exit.")] = False,
        quiet: Annotated[
            bool,
            typer.Option(
                "--quiet", "-q", help="No progress bars (there are none when stderr is not a terminal)."
            ),
        ] = False,
        backend: BackendOption = "torch",
        onnx_file: OnnxFileOption = None,
    ) -> None:
        """Evaluate a model C-MTEB style: retrieval and reranking per M3 mode (+ BM25), and the other task types.

        Retrieval and reranking queries get the model's 'query' prompt and their corpora its 'document'
        prompt; the texts of the other task types get its default prompt, if any."""
        from trivec.evaluation.evaluators.base import hybrid_fusion
        from trivec.evaluation.registry import task_from_dir
        from trivec.evaluation.runner import evaluate, resolve_tasks

        runtime = check_backend(backend, onnx_file)
        check_dtype_option(dtype)
        language_list = [x.strip() for x in languages.split(",")] if languages else None
        specs: list = []
        for folder in task_dir or []:
            specs.extend(task_from_dir(folder, task_type, language=language))
        if tasks != "all" or not specs:
            specs.append(tasks)
        if list_tasks:
            for task in resolve_tasks(specs, data_dir, language_list):
                typer.echo(f"{task.name}\t{task.type.value}\t{'-'.join(task.languages)}\t{task.main_score}")
            return
        if output is None:
            raise fail("--output is required (a directory for the results)")
        task_prompts: dict[str, dict[str, str]] = {}
        if prompts_file is not None:
            try:
                loaded = json.loads(prompts_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise fail(f"{prompts_file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(loaded, dict):
                raise fail(
                    f'{prompts_file}: expected a JSON object {{task name: {{"query": ..., "document": ...}}}}'
                )
            for name, value in loaded.items():
                if isinstance(value, str):
                    value = {"query": value}
                if not isinstance(value, dict):
                    raise fail(
                        f"{prompts_file}: task {name!r}: expected a query prompt string or an object "
                        '{"query": ..., "document": ...}'
                    )
                task_prompts[name] = value
        encoder: Any = model
        if runtime != "torch":  # the model's batches run in onnxruntime
            from trivec.inference import Embedder

            encoder = Embedder.from_pretrained(model, backend=runtime, onnx_file=onnx_file, dtype=dtype)
        results = evaluate(
            encoder,
            specs,
            output,
            modes=modes,
            weights=parse_weights(weights),
            fusion=fusion,
            prompts=prompt_overrides(query_prompt, document_prompt),
            task_prompts=task_prompts,
            batch_tokens=batch_tokens,
            dtype=dtype,
            data_dir=data_dir,
            languages=language_list,
            max_length=max_length,
            top_k=top_k,
            rerank_k=rerank_k,
            seed=seed,
            progress=not (quiet or is_quiet()),
            resume=resume,
            overwrite=overwrite,
        )
        for result in results:
            values = ", ".join(f"{m} {100 * v:.2f}" for m, v in result["main_score"]["values"].items())
            skipped = result["skipped_modes"]
            note = f"  (skipped: {', '.join(f'{m}: {r}' for m, r in skipped.items())})" if skipped else ""
            fusion = hybrid_fusion(result)
            if fusion not in (None, "weighted"):
                note += f"  (hybrids fused by {fusion})"
            if result.get("resumed"):
                note += f"  (kept: evaluated {result.get('time', {}).get('finished_at', 'earlier')})"
            typer.echo(f"{result['task']['name']}\t{result['main_score']['metric']}\t{values or '-'}{note}")
        typer.echo(f"results → {output}/ (summary.md, summary.png)", err=True)

    @app.command("eval-report")
    @clean_errors
    def eval_report(
        directories: Annotated[list[Path], typer.Argument(help="Result directories of `trivec eval`.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="Where summary.md and summary.png go.")],
        label: Annotated[
            list[str] | None, typer.Option("--label", help="Column label per directory (repeat, in order).")
        ] = None,
        paired_with: Annotated[
            str,
            typer.Option(
                "--paired-with",
                help="The mode every other mode is compared with, query by query (mean difference, "
                "bootstrap interval, randomization-test p; the report states the level and rounds). Aliases "
                "as in --modes (hybrid = all).",
            ),
        ] = "dense",
    ) -> None:
        """Compare result directories (models or settings): one markdown table and one chart."""
        from trivec.evaluation.report import write_report

        md, png = write_report(directories, output, labels=label or None, paired_with=paired_with)
        typer.echo(f"{md}\n{png}")
