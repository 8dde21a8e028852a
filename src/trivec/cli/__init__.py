"""The `trivec` command line: a thin layer over the Python API, one module per concern.

`common` holds what the commands share (errors, option checks, options defined once) and imports no other
command module; each command module adds its commands to the app through `register(app)`, and only this
module imports them. Heavy imports stay inside the commands, so `trivec --help` loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any

import typer

from trivec.cli import embed, evaluate, export, index, rerank, retromae, search, serve, train
from trivec.cli.common import QUIET_HELP
from trivec.progress import setup_logging

app = typer.Typer(
    name="trivec",
    help="BGE / BGE-M3 embeddings: dense, sparse and ColBERT outputs, scoring, search, training, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# the order of registration is the order of `trivec --help`
for _module in (embed, rerank, evaluate, retromae, train, serve, index, search, export):
    _module.register(app)


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
