"""Exceptions that trivec raises on bad input: each names the problem in its message."""

from __future__ import annotations


class TrivecError(Exception):
    """Base class of trivec's own errors (the CLI prints the message and exits with code 2).

    `cli`: the same message in the command line's terms (`--upsert` instead of `upsert=True`), which the
    `trivec` command prints instead; the message itself speaks the Python API's.
    """

    def __init__(self, message: str = "", *, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli_message = cli

    def for_cli(self) -> str:
        return self.cli_message or str(self)


class CheckpointError(TrivecError):
    """A model directory is missing files, has mismatched head files, or cannot be read."""


class UnsupportedOutputError(TrivecError):
    """An output (sparse / ColBERT) was asked of a model that has no head for it."""


class InputError(TrivecError, ValueError):
    """Texts, pairs or files given to trivec are malformed."""


class CorruptIndexError(TrivecError):
    """Index files are missing, truncated, or do not match the manifest or their checksums."""
