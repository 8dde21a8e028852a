"""What every `trivec` command shares: error handling, option checks, and the options defined once.

The leaf of `trivec.cli`: the command modules import it, it imports none of them. The option annotations are
module globals here so that the command modules can import them at module level (typer reads a command's
annotations from its module's globals).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import MISSING, fields
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from trivec.errors import TrivecError

if TYPE_CHECKING:
    from trivec.inference.encoder import Embedder

F = TypeVar("F", bound=Callable[..., Any])
QUIET_HELP = "Errors and warnings only: no progress or log lines on stderr."
GROUPS = {
    "train": "Train embedding models (pre-training, fine-tuning).",
    "data": "Build training data.",
}


def fail(message: str) -> typer.Exit:
    """Print one clear line and return the exit (code 2) to raise."""
    typer.echo(f"trivec: error: {message}", err=True)
    return typer.Exit(code=2)


def clean_errors(func: F) -> F:
    """Turn trivec's and the OS's errors into one line on stderr and exit code 2, and Ctrl-C into one line and
    the shell's 130 (whatever the command was writing has been cleaned up or left whole on the way out)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrivecError as exc:
            raise fail(exc.for_cli()) from None
        except (
            BrokenPipeError
        ):  # `trivec … | head`: the reader has what it wanted; stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            raise typer.Exit(code=141) from None
        except (OSError, ValueError) as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            typer.echo("trivec: interrupted", err=True)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def check_language_option(text: str | None) -> str | None:
    """`--language` as an ISO 639-1 code (`ID` → `id`; None: not given), refused by name when unknown."""
    if text is None:
        return None
    from trivec.languages import language_code

    return language_code(text, "--language")


def parse_weights(text: str | None) -> list[float] | None:
    """`--weights dense,sparse,colbert` as three numbers (None: not given)."""
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


def field_help(settings: type, name: str, *, with_default: bool = True) -> str:
    """The help text of the dataclass field `name` of `settings` (its `metadata["help"]`), for the option that
    sets it: said once, where the setting is defined. With the field's default value, as the options default
    to None ('not given', so that a YAML recipe can set them)."""
    definition = next(f for f in fields(settings) if f.name == name)
    text = str(definition.metadata["help"])
    factory = definition.default_factory
    default = factory() if factory is not MISSING else definition.default
    if not with_default or default in (None, MISSING, []) or isinstance(default, bool):
        return text  # nothing to show, or an on/off flag: it says what it turns on
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    return f"{text.rstrip('.')} (default {shown})."


def trainer_help(text: str, defaults: Mapping[str, Any], name: str) -> str:
    """The help of an option that sets the Trainer argument `name`, with the recipe's default for it (its
    `TRAINING_DEFAULTS`): said where the default is defined, so help and behaviour cannot disagree."""
    return f"{text.rstrip('.')} (default {defaults[name]})." if name in defaults else text


def field_names(*settings: type) -> frozenset[str]:
    """The names the dataclasses `settings` take as keyword arguments (a recipe's, Hugging Face's
    `TrainingArguments`): what a training command's options may be named."""
    return frozenset(f.name for cls in settings for f in fields(cls) if f.init)


def given_fields(values: Mapping[str, Any], *settings: type) -> dict[str, Any]:
    """The options a training command was given, by the field of `settings` each sets: the command's
    parameters are named after the fields (`given_fields(locals(), ...)`), so no option is renamed by hand.
    None is 'not given' (a YAML recipe or a default decides) and is left out; paths become strings."""

    def plain(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return [plain(item) for item in value] if isinstance(value, list) else value

    names = field_names(*settings)
    return {name: plain(value) for name, value in values.items() if name in names and value is not None}


def comma_list(items: list[str] | None) -> list[str] | None:
    """A repeatable option whose values may also be comma-separated (`-d a.jsonl,b.jsonl -d c.jsonl`), as
    one list (None: not given)."""
    return [part for item in items for part in item.split(",") if part] if items else None


def command_group(app: typer.Typer, name: str) -> typer.Typer:
    """The sub-app `name` of `app` (`train`, `data`): the one already registered, else a new one."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(name=name, help=GROUPS[name], no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model directory, hub id, or 'default'.")]

# the help panel of a training command's options that set Hugging Face's TrainingArguments
TRAINER_PANEL = "Trainer (Hugging Face TrainingArguments)"
# what every training command takes: the Trainer's resume_from_checkpoint, and --set (no field of its own)
ResumeOption = Annotated[
    str | None,
    typer.Option(
        "--resume-from-checkpoint",
        "--resume",
        help="Checkpoint directory to resume from, or 'last' (the newest checkpoint-* of the output directory).",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Any other argument (TrainingArguments too): KEY=VALUE; repeatable."),
]

QueryPromptOption = Annotated[
    str | None,
    typer.Option(
        "--query-prompt",
        help="Text put before every query instead of the model's 'query' prompt ('' for none).",
    ),
]
IndexOption = Annotated[Path, typer.Option("--index", "-x", help="Index directory.")]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        help="Hybrid weights dense,sparse,colbert (default: the model's fusion_weights, else 0.4,0.2,0.4)."
    ),
]
LanguageOption = Annotated[
    str | None,
    typer.Option(
        "--language",
        help="The queries' ISO 639-1 language, e.g. id: hybrids use the weights the model has for it "
        "(fusion_weights_by_language in its trivec_config.json), if any, unless --weights gives some.",
    ),
]
FusionOption = Annotated[
    str | None,
    typer.Option(
        help="How hybrids fuse the modes' scores: weighted (mean), rrf (ranks), zscore (each mode standardised "
        "over the candidates first) or auto (weighted where the query's score spreads lie in the ranges the "
        "model's weights were chosen in, zscore elsewhere); any of them +vote (auto+vote: a candidate that "
        "two of three modes rank first ranks first); default: the model's fusion, else weighted "
        "(docs/retrieval.md)."
    ),
]
DocumentPromptOption = Annotated[
    str | None,
    typer.Option(
        "--document-prompt",
        help="Text put before every passage instead of the model's 'document' prompt ('' for none).",
    ),
]


def prompt_overrides(query_prompt: str | None, document_prompt: str | None) -> dict[str, str] | None:
    """`{"query": ..., "document": ...}` of the options given (None when neither is): for
    `Embedder.from_pretrained(..., prompts=...)`, where they replace the model's prompts of those roles."""
    given = {
        name: value
        for name, value in (("query", query_prompt), ("document", document_prompt))
        if value is not None
    }
    return given or None


_BACKEND_HELP = (
    "Encoder runtime: torch (default) or onnx (the model directory's onnx/model.onnx, written by "
    "`trivec export onnx`; runs in onnxruntime, same outputs)."
)
BackendOption = Annotated[str, typer.Option("--backend", "--model-backend", help=_BACKEND_HELP)]
# `trivec index build`, where --backend names the index store (embedded / qdrant)
ModelBackendOption = Annotated[str, typer.Option("--model-backend", help=_BACKEND_HELP)]
OnnxFileOption = Annotated[
    str | None,
    typer.Option(
        "--onnx-file",
        help="With the onnx encoder runtime (--backend onnx; in `index`: --model-backend onnx): the graph to "
        "run, a file in the model's onnx/ folder (default model.onnx; "
        "model_int8.onnx: the int8 graph of `trivec export onnx --quantize int8`).",
    ),
]


# What the commands that encode load with when neither --dtype nor TRIVEC_DTYPE is given: `auto` = bf16 where it
# is native (CPUs with AMX / AVX512-BF16, CUDA from Ampere on), float32 elsewhere (`trivec.inference.precision`;
# the measurements behind it are in docs/onnx.md). The Python API's default stays float32.
DEFAULT_DTYPE = "auto"
DTYPE_ENV = "TRIVEC_DTYPE"
DtypeOption = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar=DTYPE_ENV,
        help="Encoder precision: auto (bfloat16 on CPUs with AMX / AVX512-BF16 and GPUs with native bf16, "
        "float32 elsewhere), float32 (exact), bfloat16 or float16.",
    ),
]


def check_dtype_option(dtype: str) -> str:
    """--dtype checked before anything loads (one line naming the choices)."""
    from trivec.inference.precision import check_dtype

    check_dtype(dtype)
    return dtype


WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Encode in N processes, each loading the model once (on the CPU they share the cores); the "
        "outputs are those of one process.",
    ),
]
DevicesOption = Annotated[
    str | None,
    typer.Option(
        "--devices", help="One encode worker per device, comma-separated: cpu,cpu or cuda:0,cuda:1."
    ),
]


def check_workers(workers: int | None, devices: str | None) -> None:
    """Refuse bad `--workers` / `--devices` before a model loads (each device checked once)."""
    if workers is None and devices is None:
        return
    from trivec.inference.devices import default_device
    from trivec.inference.pool import resolve_devices

    resolve_devices(workers, devices, default_device())


@contextmanager
def encode_workers(embedder: Embedder, workers: int | None, devices: str | None) -> Iterator[None]:
    """While open, `embedder` encodes in the worker processes `--workers` / `--devices` ask for (none for one
    worker on the default device); they are stopped on the way out, whatever happened."""
    if devices is None and workers in (None, 1):
        yield
        return
    with embedder.start_pool(workers, devices):
        yield
