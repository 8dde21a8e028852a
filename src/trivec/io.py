"""Reading text and pair files with errors that name file and line; atomic output files."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from trivec.errors import InputError
from trivec.textcheck import find_surrogate, json_type, may_hold_surrogate


def _open_text(path: Path) -> IO[str]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        return path.open("r", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line; malformed lines raise naming file and line."""
    path = Path(path)
    with _open_text(path) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
                if not isinstance(obj, dict):
                    raise InputError(f"{path}:{number}: expected a JSON object, got {json_type(obj)}")
                if may_hold_surrogate(line):
                    found = find_surrogate(obj)
                    if found is not None:
                        raise InputError(f"{path}:{number}: {found[0]} contains {found[1]}")
                yield number, obj
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def read_texts(path: str | os.PathLike[str], field: str = "text") -> list[str]:
    """Texts from `.txt` (one per line) or `.jsonl` (`{"text": ...}` per line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        texts = []
        for number, obj in iter_jsonl(path):
            value = obj.get(field)
            if not isinstance(value, str):
                problem = "missing" if field not in obj else f"{json_type(value)}, not a string"
                raise InputError(f"{path}:{number}: field {field!r} is {problem}")
            texts.append(value)
        return texts
    if suffix in (".txt", ".text", ""):
        with _open_text(path) as handle:
            try:
                content = handle.read()
            except UnicodeDecodeError as exc:
                raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
        if not content:
            return []
        lines = content.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line.removesuffix("\r") for line in lines]
    raise InputError(f"{path}: unsupported input type {suffix!r}; use .txt (one text per line) or .jsonl")


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """`{"query": ..., "passage": ...}` per line."""
    pairs = []
    for number, obj in iter_jsonl(path):
        for key in ("query", "passage"):
            if not isinstance(obj.get(key), str):
                problem = "missing" if key not in obj else f"{json_type(obj[key])}, not a string"
                raise InputError(f"{path}:{number}: field {key!r} is {problem}")
        pairs.append((obj["query"], obj["passage"]))
    return pairs


def check_output_path(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Refuse an output path that cannot be written — a directory, a missing or read-only parent — before
    any work is done, not after it."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"{target}: is a directory; the {what} must be a file path")
    if not directory.is_dir():
        raise InputError(f"{target}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{target}: directory {directory} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(f"{target}: the file is read-only")
    return target


def _umask() -> int:
    """The process's umask, read without changing it (Linux exposes it; elsewhere the set-and-restore pair)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Write to a temporary file beside `path` and rename it into place only when the block succeeds.

    The file gets the mode a plain `open(path, "w")` would give it: an existing file's mode is kept, a new
    file gets 0666 less the umask (not the 0600 of the temporary file)."""
    target = check_output_path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
