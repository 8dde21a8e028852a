"""Checks that text is text: lone UTF-16 surrogates and the names of JSON types in error messages.

A JSON escape such as `"\\ud800"` (or an undecodable byte in a command-line argument, which Python keeps as
`\\udcff`) gives a Python `str` holding a lone surrogate. It is not valid Unicode: it has no UTF-8 form, so a
tokenizer, a JSON writer with `ensure_ascii=False` or a file write fails on it far from where it came in.
trivec refuses such text where it enters (files, the Python API, HTTP bodies), naming where it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from trivec.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")  # how one is written in JSON


def lone_surrogate(text: str) -> int | None:
    """Position of the first lone surrogate in `text`, or None (ASCII text is answered without a scan)."""
    if text.isascii():
        return None
    match = _SURROGATE.search(text)
    return match.start() if match else None


def surrogate_message(text: str, position: int) -> str:
    return (
        f"a lone surrogate \\u{ord(text[position]):04x} at character {position}, which is not valid Unicode "
        "text (it has no UTF-8 form)"
    )


def check_text(text: str, where: str) -> None:
    """Raise `InputError("{where} contains a lone surrogate …")` when `text` holds one."""
    position = lone_surrogate(text)
    if position is not None:
        raise InputError(f"{where} contains {surrogate_message(text, position)}")


def check_texts(texts: Iterable[str], what: str = "text") -> None:
    """`check_text` of each text, named `{what} at position i`."""
    for position, text in enumerate(texts):
        if not text.isascii():
            check_text(text, f"{what} at position {position}")


def may_hold_surrogate(json_line: str) -> bool:
    """Whether a JSON text could decode to a lone surrogate (it writes a surrogate escape somewhere)."""
    return "\\u" in json_line and _SURROGATE_ESCAPE.search(json_line) is not None


def find_surrogate(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """(where the first string holding a lone surrogate is — `field 'metadata.tags[2]'` —, what it is) inside
    decoded JSON, or None."""
    if isinstance(value, str):
        position = lone_surrogate(value)
        return (field_name(path), surrogate_message(value, position)) if position is not None else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_position = lone_surrogate(str(key))
            if key_position is not None:
                return f"a key of {field_name(path)}", surrogate_message(str(key), key_position)
            found = find_surrogate(item, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_surrogate(item, (*path, f"[{index}]"))
            if found is not None:
                return found
    return None


def field_name(path: tuple[str, ...]) -> str:
    """`field 'a.b[0]'` for the path ("a", "b", "[0]"); `the object` for the top level."""
    if not path:
        return "the object"
    return "field " + repr("".join(p if p.startswith("[") else f".{p}" for p in path).lstrip("."))


def json_type(value: Any) -> str:
    """What a decoded JSON value is, as a user wrote it: 'a string', 'a number', 'an object', …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
