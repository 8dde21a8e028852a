"""Reading text and pair files with errors that name file and line; atomic output files."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # Windows: no file locks of this kind, so no stale-build cleanup
    fcntl = None  # type: ignore[assignment]

from trivec.errors import InputError
from trivec.textcheck import find_surrogate, json_type, may_hold_surrogate

logger = logging.getLogger("trivec")

STDIO = "-"  # a path that means stdin (inputs) or stdout (outputs)


def is_stdio(path: str | os.PathLike[str] | None) -> bool:
    return path is not None and str(path) == STDIO


def _open_bytes(path: Path) -> IO[bytes]:
    """A text file to read (as bytes, decoded by `decode_utf8`), or an `InputError` saying why not."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc


BOM = "\ufeff"  # a byte-order mark some editors and spreadsheet exports put first: not part of the text


def decode_utf8(raw: bytes, name: str, first_line: int = 1) -> str:
    """`raw` as UTF-8 text, strictly, less a leading byte-order mark (where `first_line` is 1); bytes that
    are not UTF-8 are an `InputError` naming the file, line and byte (`first_line`: the number of `raw`'s
    first line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # the lines before the bad byte, ended as text mode ends them
        before = raw[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line = first_line + before.count(b"\n")
        column = len(before) - before.rfind(b"\n")
        raise InputError(
            f"{name}:{line}: not UTF-8 text (byte {column} of the line: {exc.reason}); save the file as UTF-8"
        ) from None
    return text.removeprefix(BOM) if first_line == 1 else text


def read_text_file(path: str | os.PathLike[str]) -> str:
    """A whole text file, strictly UTF-8 (`decode_utf8`), with the errors of `_open_bytes`; line ends `\\r\\n`
    and `\\r` read as `\\n` (as Python's text mode reads them)."""
    with _open_bytes(Path(path)) as handle:
        return universal_newlines(decode_utf8(handle.read(), str(path)))


def universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_stdin() -> str:
    """All of stdin as UTF-8 text (strictly: bytes that are not UTF-8 are an error, as in files)."""
    stream = sys.stdin
    raw = (
        stream.buffer.read()
        if hasattr(stream, "buffer")
        else stream.read().encode("utf-8", "surrogateescape")
    )
    return decode_utf8(raw, "<stdin>")


def iter_jsonl(path: str | os.PathLike[str], text: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for each non-blank line; malformed lines raise naming file and line.
    `-` reads stdin; `text`: lines already read (named `path` in messages)."""
    name = "<stdin>" if is_stdio(path) else str(path)
    if text is None and is_stdio(path):
        text = read_stdin()
    for number, line in numbered_lines(name, Path(path), text):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{name}:{number}: invalid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise InputError(f"{name}:{number}: expected a JSON object, got {json_type(obj)}")
        if may_hold_surrogate(line):
            found = find_surrogate(obj)
            if found is not None:
                raise InputError(f"{name}:{number}: {found[0]} contains {found[1]}")
        yield number, obj


def numbered_lines(name: str, path: Path, text: str | None = None) -> Iterator[tuple[int, str]]:
    """`(line_number, line)` of `text`, else of the file read line by line (each decoded by `decode_utf8`,
    so a bad byte is reported on its line; a leading byte-order mark dropped)."""
    if text is not None:
        yield from enumerate(io.StringIO(text.removeprefix(BOM)), start=1)
        return
    with _open_bytes(path) as handle:
        number = 0
        for raw in handle:  # split at b"\n"; a lone "\r" ends a line too, as in Python's text mode
            pieces = universal_newlines(decode_utf8(raw, name, number + 1)).split("\n")
            for position, piece in enumerate(pieces):
                if position < len(pieces) - 1:
                    number += 1
                    yield number, piece + "\n"
                elif piece:  # the file's last line, without a line end
                    number += 1
                    yield number, piece


def _looks_like_jsonl(text: str) -> bool:
    """stdin's format: JSON Lines when its first non-blank line is a JSON object, else one text per line."""
    for line in text.splitlines():
        if line.strip():
            if not line.lstrip().startswith("{"):
                return False
            try:
                return isinstance(json.loads(line), dict)
            except json.JSONDecodeError:
                return False
    return False


def with_title(title: str | None, text: str) -> str:
    """What a model encodes of a titled text: `"{title} {text}"` (as MTEB and FlagEmbedding join them)."""
    return f"{title or ''} {text}".strip()


def read_records(
    path: str | os.PathLike[str], field: str = "text", title_field: str | None = None
) -> list[tuple[Any, str]]:
    """`(id, text)` per input: `.txt` one text per line (id None), `.jsonl` `{"id"?, "text": ...}` per line
    (the id as written: a string or an integer; None when absent; with `title_field`, a string title there
    goes before the text, `with_title`). `-` reads stdin: JSON Lines when its first non-blank line is a JSON
    object, else one text per line."""
    name = "<stdin>" if is_stdio(path) else str(path)
    text: str | None = None
    if is_stdio(path):
        text = read_stdin()
        suffix = ".jsonl" if _looks_like_jsonl(text) else ".txt"
    else:
        suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        records: list[tuple[Any, str]] = []
        for number, obj in iter_jsonl(path, text):
            value = obj.get(field)
            if not isinstance(value, str):
                problem = "missing" if field not in obj else f"{json_type(value)}, not a string"
                raise InputError(f"{name}:{number}: field {field!r} is {problem}")
            ident = obj.get("id")
            if ident is not None and (isinstance(ident, bool) or not isinstance(ident, (str, int))):
                raise InputError(
                    f"{name}:{number}: field 'id' must be a string or an integer, got {json_type(ident)}"
                )
            title = obj.get(title_field) if title_field is not None else None
            if title is not None and not isinstance(title, str):
                raise InputError(
                    f"{name}:{number}: field {title_field!r} is {json_type(title)}, not a string"
                )
            records.append((ident, with_title(title, value) if title else value))
        return records
    if suffix in (".txt", ".text", ""):
        if text is None:
            text = read_text_file(path)
        if not text:
            return []
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return [(None, line.removesuffix("\r")) for line in lines]
    raise InputError(f"{name}: unsupported input type {suffix!r}; use .txt (one text per line) or .jsonl")


def read_texts(path: str | os.PathLike[str], field: str = "text") -> list[str]:
    """Texts from `.txt` (one per line) or `.jsonl` (`{"text": ...}` per line); `-`: stdin (see
    `read_records`)."""
    return [text for _, text in read_records(path, field)]


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """`{"query": ..., "passage": ...}` per line (`-`: stdin)."""
    name = "<stdin>" if is_stdio(path) else str(path)
    pairs = []
    for number, obj in iter_jsonl(path):
        for key in ("query", "passage"):
            if not isinstance(obj.get(key), str):
                problem = "missing" if key not in obj else f"{json_type(obj[key])}, not a string"
                raise InputError(f"{name}:{number}: field {key!r} is {problem}")
        pairs.append((obj["query"], obj["passage"]))
    return pairs


def check_output_path(
    path: str | os.PathLike[str],
    what: str = "output",
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Path:
    """Refuse an output path that cannot be written — a directory, a missing or read-only parent, one of
    the command's own `inputs` (it would be replaced by the output) — before any work is done, not after it
    (`-`, stdout, is always fine)."""
    target = Path(path)
    if is_stdio(path):
        return target
    for source in inputs:
        if source is not None and not is_stdio(source) and _same_file(target, Path(source)):
            raise InputError(f"{target}: the {what} would replace the input {source}; write another file")
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


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing: not the same file
        return False


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


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """`atomic_writer(path)`, or stdout for `-` (flushed at the end)."""
    if is_stdio(path):
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_writer(path) as handle:
        yield handle


def fsync_dir(path: Path) -> None:
    """Make a rename / file creation inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_directory(target: Path, label: str, recheck: Callable[[], None]) -> Iterator[Path]:
    """Build a directory out of sight, then move it to `target` in one rename: yields `.<name>.<label>-<id>`
    beside `target` (not created; parents are), and when the block completes calls `recheck` (the target may
    have changed meanwhile), renames a non-empty `target` aside, renames the staged directory into place and
    removes the old one. On any error the staged directory, and parents this call created, are removed (and
    a target renamed aside is put back). While it builds, a locked owner file marks the staged directory as
    in use (`remove_stale_staging`)."""
    missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target, label)
    staging = target.parent / f".{target.name}.{label}-{uuid.uuid4().hex[:8]}"
    owner = staging.with_name(staging.name + OWNER_SUFFIX)
    held = hold_owner_lock(owner)
    try:
        yield staging
        recheck()
        if target.is_dir() and any(target.iterdir()):
            aside = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
            os.rename(target, aside)
            try:
                os.rename(staging, target)
            except BaseException:
                os.rename(aside, target)  # the index it was to replace stays where it was
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            if target.is_dir():
                target.rmdir()
            os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        release_owner_lock(owner, held)
        for directory in missing:  # nearest first: only directories this call created, and only if empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    release_owner_lock(owner, held)


# beside a staged directory, locked by the process building it ("<host> <pid>" inside)
OWNER_SUFFIX = ".owner"


def hold_owner_lock(owner: Path) -> int | None:
    """Create `owner` already locked (written and locked under a temporary name, then renamed, so no other
    process ever sees it unlocked); the descriptor holds the lock until `release_owner_lock`. None where
    file locks are not available (no `fcntl`): nothing is marked, and nothing is ever cleaned up."""
    if fcntl is None:
        return None
    temporary = owner.with_name(owner.name + f".{uuid.uuid4().hex[:8]}")
    descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(descriptor, f"{socket.gethostname()} {os.getpid()}\n".encode())
        os.rename(temporary, owner)
    except BaseException:
        os.close(descriptor)
        temporary.unlink(missing_ok=True)
        raise
    return descriptor


def release_owner_lock(owner: Path, descriptor: int | None) -> None:
    if descriptor is not None:
        owner.unlink(missing_ok=True)  # first: a cleaner that opens it from now on finds nothing
        os.close(descriptor)


def remove_stale_staging(target: Path, label: str) -> list[Path]:
    """Remove the staged directories of `target` whose builder died before finishing (a killed build leaves
    `.<name>.<label>-<id>` behind, possibly gigabytes): those whose owner file no process holds locked any
    more — a file lock dies with its process, whatever the host name or PID namespace. A locked one (a build
    running) and any that cannot be opened are left alone."""
    if fcntl is None:
        return []
    removed = []
    for owner in target.parent.glob(f".{glob.escape(target.name)}.{label}-*{OWNER_SUFFIX}"):
        try:
            descriptor = os.open(owner, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its build is running
            os.close(descriptor)
            continue
        try:
            staging = owner.with_name(owner.name.removesuffix(OWNER_SUFFIX))
            shutil.rmtree(staging, ignore_errors=True)
            owner.unlink(missing_ok=True)
            logger.warning("removed %s, left by a build that did not finish", staging)
            removed.append(staging)
        finally:
            os.close(descriptor)
    return removed
