"""The embedded index's commit point: `MANIFEST.json`, replaced atomically, and the single-writer lock.

A commit writes new segment / tombstone files (fsync'd), then the manifest to a temporary file (fsync'd),
`os.replace`s it over the old one and fsyncs the directory. A crash at any moment therefore leaves either
the old or the new manifest, and both only name complete files. The manifest carries a checksum of its own
body so a damaged one is an error, never a half-read index.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from trivec.errors import InputError
from trivec.io import fsync_dir
from trivec.retrieval.segment import CorruptIndexError

MANIFEST = "MANIFEST.json"
LOCK = "LOCK"
FORMAT = "trivec-index"
VERSION = 2  # the newest format this trivec reads and writes: 2 while a segment stages float16 ColBERT rows


class NotAnIndexError(InputError):
    """The directory is not a trivec index (or not an embedded one)."""


class IndexLockedError(InputError):
    """Another process holds the index's writer lock."""


class IndexReplacedError(InputError):
    """The index a handle opened was replaced (built again with overwrite) by one it cannot take over."""


def now() -> str:
    """The time a commit records (UTC, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_body(model: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an empty index: generation 0, no segments, the model record and the settings, and an
    `index_id` of its own, so that a handle can tell a later commit of its index from an index built again
    in the same place (both count generations from 1)."""
    return {
        "index_id": uuid.uuid4().hex,
        "generation": 0,
        "created": now(),
        "updated": now(),
        "model": model,
        "settings": settings,
        "projection": None,
        "residual": None,
        "segments": [],
        "documents": 0,
        "chunks": 0,
        "chunked": False,
    }


def commit_of(body: dict[str, Any]) -> tuple[str | None, int]:
    """What names one commit: the index's id (None in indexes written before ids) and the generation."""
    return body.get("index_id"), int(body["generation"])


def replaced(body: dict[str, Any], opened: dict[str, Any]) -> bool:
    """Whether `body` belongs to another index than `opened` (the directory was built again)."""
    return body.get("index_id") != opened.get("index_id")


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The committed manifest of the index in `directory`, validated."""
    if not directory.exists():
        raise NotAnIndexError(f"{directory}: no such index directory")
    if not directory.is_dir():
        raise NotAnIndexError(f"{directory} is a file, not an index directory")
    path = directory / MANIFEST
    if not path.is_file():
        qdrant = directory / "qdrant.json"
        hint = " (it is a Qdrant index; open it with the qdrant backend)" if qdrant.is_file() else ""
        raise NotAnIndexError(f"{directory} is not a trivec index: it has no {MANIFEST}{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptIndexError(f"{path} cannot be read ({exc}): the index manifest is damaged") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotAnIndexError(f"{path} is not a trivec index manifest")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise NotAnIndexError(
            f"{path} has format version {data.get('version')!r}; this trivec reads version {VERSION}"
        )
    body = data.get("body")
    if not isinstance(body, dict) or data.get("checksum") != _checksum(body):
        raise CorruptIndexError(f"{path}: checksum mismatch, the index manifest is damaged")
    return body


def format_version(body: dict[str, Any]) -> int:
    """The format `body` needs: 2 while a segment stages float16 rows for a residual codebook (a reader of
    version 1 would decode them as residual codes once the codebook is fitted), else 1 — what every reader
    since the first opens."""
    return 2 if any(record.get("colbert_staged") for record in body.get("segments", [])) else 1


def write_manifest(directory: Path, body: dict[str, Any]) -> None:
    """Atomically replace the manifest (temp file, fsync, rename, fsync directory)."""
    data = {"format": FORMAT, "version": format_version(body), "checksum": _checksum(body), "body": body}
    tmp = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / MANIFEST)
    fsync_dir(directory)


class WriterLock:
    """An exclusive `flock` on `<index>/LOCK`; released on close or when the process dies."""

    def __init__(self, directory: Path, timeout: float = 10.0) -> None:
        self.path = directory / LOCK
        self.handle: IO[str] | None = None
        self.timeout = timeout

    def acquire(self) -> None:
        if self.handle is not None:
            return
        handle = self.path.open("a+", encoding="utf-8")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    handle.close()
                    raise
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "unknown"
                    handle.close()
                    raise IndexLockedError(
                        f"{self.path.parent} is being written by another process (pid {holder}); "
                        f"waited {self.timeout:g} s for its writer lock"
                    ) from None
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    @property
    def held(self) -> bool:
        return self.handle is not None

    def release(self) -> None:
        if self.handle is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
        self.handle.close()
        self.handle = None


@contextlib.contextmanager
def locked_for_replacing(directory: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold the writer lock of the index in `directory` (if one is there) while it is removed or renamed
    aside: a writer in the middle of a commit finishes first, and none commits into the new index's place
    under the old one's manifest (`IndexLockedError` when one holds it past `timeout`)."""
    if not (directory / MANIFEST).is_file():
        yield
        return
    lock = WriterLock(directory, timeout)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
