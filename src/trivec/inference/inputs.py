"""Checks of what callers pass to `Embedder`: texts, (query, passage) pairs and the token budget.

Each problem is a one-line `InputError` naming what is wrong and where (the command-line option, when there is
one), raised before any tokenising or encoding starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from trivec.errors import InputError
from trivec.textcheck import check_text, check_texts


def text_list(texts: str | Sequence[str], what: str = "text") -> list[str]:
    """`texts` (one string or several) as a list of strings of valid text, each named `{what} at position i`."""
    if not isinstance(texts, (str, Iterable)):
        raise InputError(f"texts must be a string or a list of strings, not {type(texts).__name__}")
    items = [texts] if isinstance(texts, str) else list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InputError(f"{what} at position {position} is {type(text).__name__}, not str")
    check_texts(items, what)
    return items


def check_batch_tokens(batch_tokens: int | None) -> None:
    """A token budget is None (the default) or a positive integer."""
    if batch_tokens is not None and (
        not isinstance(batch_tokens, int) or isinstance(batch_tokens, bool) or batch_tokens < 1
    ):
        raise InputError(
            f"batch_tokens must be a positive integer, got {batch_tokens!r}",
            cli=f"--batch-tokens must be a positive integer, got {batch_tokens!r}",
        )


def split_pairs(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The queries and the passages of (query, passage) string pairs, checked pair by pair."""
    queries, passages = [], []
    for position, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise InputError(f"pair at position {position} must be a (query, passage) pair of strings")
        check_text(pair[0], f"the query of pair {position}")
        check_text(pair[1], f"the passage of pair {position}")
        queries.append(pair[0])
        passages.append(pair[1])
    return queries, passages
