"""Size limits of the source (issue #16): no module over 500 lines, no function over 80 lines of its own.

A function's own lines run from its first statement (its signature — CLI option declarations above all —
is not counted) to its end, less the functions and classes defined inside it (counted on their own). The
places over a limit when the check came are listed with their size then: they may shrink, never grow, and
leave the list once they are within the limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80
# still over the limit: path (or path::function) → lines when the check came (to be split, not to grow)
KNOWN_FILES: dict[str, int] = {}
KNOWN_FUNCTIONS: dict[str, int] = {}


def own_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    lines = set(range(node.body[0].lineno, (node.end_lineno or node.lineno) + 1))
    for child in ast.walk(node):
        if child is not node and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
            lines -= set(range(start, (child.end_lineno or child.lineno) + 1))
    return len(lines)


def sizes() -> tuple[dict[str, int], dict[str, int]]:
    files: dict[str, int] = {}
    functions: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(SRC).as_posix()
        files[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                key = f"{name}::{node.name}"
                functions[key] = max(functions.get(key, 0), own_lines(node))
    return files, functions


def over(measured: dict[str, int], limit: int, known: dict[str, int]) -> list[str]:
    return [
        f"{name}: {size} lines (limit {limit}" + (f", {known[name]} when listed)" if name in known else ")")
        for name, size in measured.items()
        if size > max(limit, known.get(name, 0))
    ]


def test_no_module_over_the_limit() -> None:
    files, _ = sizes()
    assert not over(files, MAX_FILE_LINES, KNOWN_FILES)


def test_no_function_over_the_limit() -> None:
    _, functions = sizes()
    assert not over(functions, MAX_FUNCTION_LINES, KNOWN_FUNCTIONS)
