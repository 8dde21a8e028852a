"""The `trivec` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from trivec.cli_options import (
    BackendOption,
    DocumentPromptOption,
    OnnxFileOption,
    QueryPromptOption,
    check_backend_options,
    prompt_overrides,
)
from trivec.errors import TrivecError
from trivec.progress import LOG, Progress, setup_logging

app = typer.Typer(
    name="trivec",
    help="BGE / BGE-M3 embeddings: dense, sparse and ColBERT outputs, scoring, search, training, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
QUIET_HELP = "Errors and warnings only: no progress or log lines on stderr."


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"trivec {version('trivec')}")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree without an install
            typer.echo("trivec (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """BGE / BGE-M3 embeddings: dense, sparse and ColBERT outputs, scoring, search, training, evaluation."""
    setup_logging(quiet)


F = TypeVar("F", bound=Callable[..., Any])
ENCODE_CHUNK = 4096


def fail(message: str) -> typer.Exit:
    """Print one clear line and return the exit (code 2) to raise."""
    typer.echo(f"trivec: error: {message}", err=True)
    return typer.Exit(code=2)


def clean_errors(func: F) -> F:
    """Turn trivec's and the OS's errors into one line on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrivecError as exc:
            raise fail(exc.for_cli()) from None
        except (OSError, ValueError) as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        weights = [float(x) for x in text.split(",")]
    except ValueError:
        raise fail(
            f"--weights must be three comma-separated numbers (dense,sparse,colbert), got {text!r}"
        ) from None
    if len(weights) != 3:
        raise fail(f"--weights must be three numbers (dense,sparse,colbert), got {len(weights)}")
    return weights


def check_positive(value: int | None, option: str, minimum: int = 1) -> None:
    """Refuse an integer option below `minimum` (None: not given) with a message naming it."""
    if value is not None and value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise fail(f"{option} must be {what}, got {value}")


ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model directory, hub id, or 'default'.")]


@app.command()
@clean_errors
def encode(
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            help=".txt (one text per line), .jsonl ({'id'?: ..., 'text': ...}), or - for stdin (JSON Lines "
            "when its first line is a JSON object, else one text per line).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="JSONL output, one object per input text (with its 'id'), or - for stdout."
        ),
    ],
    model: ModelOption = "default",
    dense: Annotated[bool, typer.Option("--dense", help="Write the dense vector.")] = False,
    sparse: Annotated[
        bool, typer.Option("--sparse", help="Write lexical weights {indices, values}.")
    ] = False,
    colbert: Annotated[bool, typer.Option("--colbert", help="Write ColBERT vectors.")] = False,
    prompt_name: Annotated[
        str | None,
        typer.Option(
            "--prompt-name",
            help="Model prompt put before every text: 'query', 'document' or another name the model has "
            "(default: the model's default prompt, if any).",
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Text put before every text instead ('' for none).")
    ] = None,
    query: Annotated[
        bool, typer.Option("--query", help="Inputs are search queries: short for --prompt-name query.")
    ] = False,
    max_length: Annotated[int | None, typer.Option(help="Truncate inputs (default: model limit).")] = None,
    batch_tokens: Annotated[int | None, typer.Option(help="Padded tokens per batch.")] = None,
    mcls: Annotated[
        bool, typer.Option("--mcls", help="Average a CLS every 256 tokens (long inputs).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
    backend: BackendOption = "torch",
    onnx_file: OnnxFileOption = None,
) -> None:
    """Encode texts into dense / sparse / ColBERT outputs (dense when none is chosen)."""
    from trivec.inference import Embedder
    from trivec.io import check_output_path, open_output, read_records

    if query:
        if prompt_name not in (None, "query"):
            raise fail(f"--query means --prompt-name query; it contradicts --prompt-name {prompt_name}")
        prompt_name = "query"
    check_positive(batch_tokens, "--batch-tokens")
    check_positive(max_length, "--max-length", minimum=2)
    runtime = check_backend_options(backend, onnx_file)
    check_output_path(output)  # before the model loads and the texts are encoded, not after
    records = read_records(input)
    texts = [text for _, text in records]
    if not (dense or sparse or colbert):
        dense = True
    embedder = Embedder.from_pretrained(model, backend=runtime, onnx_file=onnx_file)
    embedder.require(sparse=sparse, colbert=colbert)
    embedder.resolve_prompt(prompt_name, prompt)  # an unknown prompt name fails before any output is written
    with open_output(output) as handle, Progress(len(texts), "encode", enabled=not quiet) as progress:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start : start + ENCODE_CHUNK]
            result = embedder.encode(
                chunk,
                dense=dense,
                sparse=sparse,
                colbert=colbert,
                prompt_name=prompt_name,
                prompt=prompt,
                max_length=max_length,
                batch_tokens=batch_tokens,
                mcls=mcls,
                show_progress=False,
            )
            for i in range(len(chunk)):
                row: dict[str, Any] = {}
                ident = records[start + i][0]
                if ident is not None:  # the input's id, carried over
                    row["id"] = ident
                if result.dense is not None:
                    row["dense"] = result.dense[i].tolist()
                if result.sparse is not None:
                    row["sparse"] = result.sparse[i].to_dict()
                if result.colbert is not None:
                    row["colbert"] = result.colbert[i].tolist()
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            progress.update(len(chunk))
    LOG.info("encoded %d texts → %s", len(texts), "stdout" if str(output) == "-" else output)


@app.command()
@clean_errors
def score(
    pairs: Annotated[
        Path, typer.Option("--pairs", "-p", help="JSONL of {'query': ..., 'passage': ...}, or - for stdin.")
    ],
    model: ModelOption = "default",
    weights: Annotated[
        str | None, typer.Option(help="dense,sparse,colbert weights (default 0.4,0.2,0.4)")
    ] = None,
    query_prompt: QueryPromptOption = None,
    document_prompt: DocumentPromptOption = None,
    max_query_length: Annotated[int | None, typer.Option(help="Query truncation.")] = None,
    max_passage_length: Annotated[int | None, typer.Option(help="Passage truncation.")] = None,
    backend: BackendOption = "torch",
    onnx_file: OnnxFileOption = None,
) -> None:
    """Score query/passage pairs: per-mode scores and weighted hybrids, one JSON line per pair.

    Queries get the model's 'query' prompt and passages its 'document' prompt (if it has them)."""
    from trivec.inference import Embedder
    from trivec.io import read_pairs

    runtime = check_backend_options(backend, onnx_file)
    items = read_pairs(pairs)
    parsed = parse_weights(weights)
    embedder = Embedder.from_pretrained(
        model,
        prompts=prompt_overrides(query_prompt, document_prompt),
        backend=runtime,
        onnx_file=onnx_file,
    )
    scores = embedder.score_pairs(
        items,
        weights=parsed,
        max_query_length=max_query_length,
        max_passage_length=max_passage_length,
    )
    for i in range(len(items)):
        typer.echo(json.dumps({mode: round(float(values[i]), 6) for mode, values in scores.items()}))


# Command groups of the other concerns register here, one line each (keep imports inside the modules lazy).
# --- registrations (start) ---
__import__("trivec.evaluation.cli", fromlist=["register"]).register(app)
__import__("trivec.training.retromae.cli", fromlist=["register"]).register(app)
__import__("trivec.training.cli", fromlist=["register"]).register(app)
__import__("trivec.serving.cli", fromlist=["register"]).register(app)
__import__("trivec.retrieval.cli", fromlist=["register"]).register(app)
__import__("trivec.export.cli", fromlist=["register"]).register(app)
# --- registrations (end) ---


def _with_quiet(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` as a command that takes -q / --quiet: its own option when it has one, else an added one."""
    import inspect

    signature = inspect.signature(func, eval_str=True)
    if "quiet" in signature.parameters:

        @wraps(func)
        def own(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("quiet"):
                setup_logging(quiet=True)
            return func(*args, **kwargs)

        return own

    @wraps(func)
    def added(*args: Any, quiet: bool = False, **kwargs: Any) -> Any:
        if quiet:
            setup_logging(quiet=True)
        return func(*args, **kwargs)

    option = Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)]
    parameter = inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=option)
    added.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), parameter]
    )
    added.__annotations__ = {
        **{name: p.annotation for name, p in signature.parameters.items()},
        "quiet": option,
    }
    return added


def _quiet_everywhere(group: typer.Typer) -> None:
    """-q on every command (issue #20): as `trivec -q COMMAND` and as `trivec COMMAND … -q`."""
    for info in group.registered_commands:
        if info.callback is not None and not getattr(info.callback, "_trivec_quiet", False):
            info.callback = _with_quiet(info.callback)
            info.callback._trivec_quiet = True  # type: ignore[attr-defined]
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _quiet_everywhere(sub.typer_instance)


_quiet_everywhere(app)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
