"""Lazy package attributes (PEP 562): `from trivec import Embedder` loads torch, `import trivec` does not.

The command line imports its command modules at start; with eager package `__init__`s, `trivec --help`
imported torch, transformers and faiss (≈ 5 s) to print a page of text.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for `package`: each name in `exports` is imported from its module on first use
    (and kept in the package's namespace afterwards)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
