"""The files of an embedded index directory: where an index may be created, reading the arrays the manifest
names (sizes and checksums checked), opening against a committing writer, and checking everything.

    index/
      MANIFEST.json        the commit point (see manifest.py); names every live file
      LOCK                 flock held by the single writer while it has uncommitted changes
      segments/<name>/     immutable segment files (see segment.py)
      tombstones/<name>.<generation>.del   int64 rows deleted from a segment, as of that commit
      colbert.projection.<id>.f32          reduced-dimension map, when ColBERT dimensions are reduced
      colbert.residual.<id>.f32            the codebook of residual ColBERT codes (residual.py)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trivec.errors import InputError
from trivec.io import fsync_dir
from trivec.retrieval.integrity import digest
from trivec.retrieval.manifest import MANIFEST, NotAnIndexError, commit_of, read_manifest
from trivec.retrieval.residual import ResidualCodes
from trivec.retrieval.segment import CorruptIndexError, Segment

SEGMENTS = "segments"
TOMBSTONES = "tombstones"
FITTED_KEYS = ("projection", "residual")  # fitted on the first documents: `colbert.<key>.<id>.f32`, body[key]
OPEN_RETRY_SECONDS = 30.0  # how long a reader keeps chasing a writer that commits faster than it maps


def check_target(directory: Path, overwrite: bool) -> None:
    """Where a new index may go: an absent path, an empty directory, or (with `overwrite`) an index."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise InputError(f"{directory} is a file; choose a directory for the index")
    if any(directory.iterdir()):
        if not (directory / MANIFEST).is_file():
            raise InputError(f"{directory} is not empty and not an index; choose another directory")
        if not overwrite:
            raise InputError(
                f"{directory} is an index already (pass overwrite=True to replace it)",
                cli=f"{directory} is an index already (--overwrite replaces it)",
            )


T = TypeVar("T")


def retrying(load: Callable[[], T], directory: Path) -> T:
    """Run `load` (which maps the files a manifest names); when a file is gone because a writer committed
    and removed it meanwhile, read the new manifest and try again. A damaged index still raises: a file
    missing while the commit stays the same is corruption, not a race. Retries are bounded by time, not
    by count, so a busy writer on a loaded machine cannot starve a reader into a false error."""
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    pause = 0.001
    while True:
        commit = commit_of(read_manifest(directory))
        try:
            return load()
        except CorruptIndexError:
            if commit_of(read_manifest(directory)) == commit or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.05)


def read_array(path: Path, dtype: type, size: int, checksum: str | None = None) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptIndexError(f"{path} is missing (the manifest lists it)") from None
    if len(raw) != size:
        raise CorruptIndexError(f"{path} has {len(raw)} bytes, the manifest says {size}: the file is damaged")
    if checksum is not None and digest(raw) != checksum:
        raise CorruptIndexError(f"{path} does not match its checksum in the manifest: the file is damaged")
    return np.frombuffer(raw, dtype=dtype).copy()


def read_fitted(directory: Path, body: dict[str, Any]) -> tuple[np.ndarray | None, ResidualCodes | None]:
    """What an index fitted on its first documents' ColBERT rows (None where nothing): the projection and the
    residual codebook, each checked against the manifest (`body`)."""
    projection, residual = None, None
    if body.get("projection"):
        spec = body["projection"]
        values = read_array(directory / spec["file"], np.float32, spec["size"], spec.get("xxh3"))
        projection = values.reshape(spec["shape"])
    if body.get("residual"):
        spec = body["residual"]
        values = read_array(directory / spec["file"], np.float32, spec["size"], spec.get("xxh3"))
        residual = ResidualCodes.from_array(values, spec["centroids"], spec["dim"], spec["bits"])
    return projection, residual


def write_fitted(
    directory: Path, fitted: dict[str, tuple[np.ndarray, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Write what a codec fitted (`fit_codec`: float32 values and record fields by manifest key) beside the
    segments, each to a new `colbert.<key>.<id>.f32` (synced); their manifest records by key, with the file's
    name, size and checksum (`read_fitted` checks them)."""
    records = {}
    for key, (values, fields) in fitted.items():
        file = f"colbert.{key}.{uuid.uuid4().hex[:8]}.f32"
        data = np.ascontiguousarray(values, dtype=np.float32).tobytes()
        write_synced(directory / file, data)
        records[key] = {"file": file, "size": len(data), "xxh3": digest(data), **fields}
    return records


def check_tombstones(path: Path, rows: np.ndarray, segment_rows: int) -> None:
    """Deleted rows: ascending, distinct, inside the segment (they index a mask)."""
    if rows.size and (
        int(rows[0]) < 0 or int(rows[-1]) >= segment_rows or (rows.size > 1 and (np.diff(rows) <= 0).any())
    ):
        raise CorruptIndexError(f"{path}: the deleted rows are not valid row numbers: the file is damaged")


def read_tombstones(directory: Path, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The deleted rows of each segment record that names a tombstone file, checked (segment name → rows)."""
    deleted: dict[str, np.ndarray] = {}
    for record in records:
        spec = record.get("deleted")
        if spec:
            rows = read_array(directory / spec["file"], np.int64, spec["size"], spec.get("xxh3"))
            check_tombstones(directory / spec["file"], rows, int(record["rows"]))
            deleted[record["name"]] = rows
    return deleted


def write_tombstones(
    directory: Path,
    records: list[dict[str, Any]],
    deleted: dict[str, np.ndarray],
    changed: set[str],
    generation: int,
) -> None:
    """Write the deleted rows of the `changed` segments as new tombstone files of commit `generation` and
    point their records at them (a segment without deleted rows gets none); synced before the commit."""
    tomb_dir = directory / TOMBSTONES
    tomb_dir.mkdir(exist_ok=True)
    for record in records:
        name = record["name"]
        if name not in changed:
            continue
        rows = deleted.get(name)
        if rows is None or rows.size == 0:
            record["deleted"] = None
            continue
        file = f"{TOMBSTONES}/{name}.{generation}.del"
        raw = np.ascontiguousarray(rows, dtype=np.int64).tobytes()
        write_synced(directory / file, raw)
        record["deleted"] = {"file": file, "count": int(rows.size), "size": len(raw), "xxh3": digest(raw)}
    fsync_dir(tomb_dir)


def listdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except FileNotFoundError:
        return []


def remove_unreferenced(directory: Path, body: dict[str, Any], uncommitted: set[str]) -> None:
    """Remove the files of crashed writers and of superseded commits: every segment, tombstone, fitted
    ColBERT file (projection, residual codebook) and manifest temporary that neither `body` (the last commit) nor `uncommitted` (this writer's) names."""
    keep_segments = {r["name"] for r in body["segments"]}
    keep_files = {r["deleted"]["file"] for r in body["segments"] if r.get("deleted")}
    keep_files |= {body[key]["file"] for key in FITTED_KEYS if body.get(key)}
    keep_files |= uncommitted
    for entry in listdir(directory / SEGMENTS):
        if entry.name not in keep_segments and f"{SEGMENTS}/{entry.name}" not in uncommitted:
            shutil.rmtree(entry, ignore_errors=True)
    for entry in listdir(directory / TOMBSTONES):
        if f"{TOMBSTONES}/{entry.name}" not in keep_files:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    for entry in listdir(directory):
        stale_tmp = entry.name.startswith(f".{MANIFEST}.") and entry.name.endswith(".tmp")
        fitted = any(entry.name.startswith(f"colbert.{key}.") for key in FITTED_KEYS)
        if stale_tmp or (fitted and entry.name not in keep_files):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def write_synced(path: Path, data: bytes) -> None:
    """Write a new file and flush it to disk before it is named by a commit."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def verify_index(directory: Path) -> dict[str, Any]:
    """Check the whole index: the manifest, every file's size and every block's checksum, the structure
    of offsets, postings and stored documents, the graph, tombstones and the fitted ColBERT files. Files
    are read afresh (blocks checked before are checked again). Returns `{"path", "generation",
    "segments", "files", "bytes", "seconds", "problems", "warnings"}`; `problems` (one line each, naming
    the file) is empty when the index is intact; `warnings` names segments without checksums."""
    started = time.perf_counter()
    problems: list[str] = []
    warnings: list[str] = []
    files = size = 0
    try:
        body = read_manifest(directory)
    except (CorruptIndexError, NotAnIndexError) as exc:
        return {
            "path": str(directory),
            "generation": None,
            "segments": 0,
            "files": 0,
            "bytes": 0,
            "seconds": round(time.perf_counter() - started, 3),
            "problems": [str(exc)],
            "warnings": [],
        }
    for record in body["segments"]:
        if not record.get("checksums"):
            warnings.append(
                f"{directory / SEGMENTS / record['name']}: no checksums (written by an older trivec): "
                "sizes and structure checked only; `trivec index compact` rewrites it with checksums"
            )
        try:
            problems.extend(Segment(directory / SEGMENTS / record["name"], record).verify())
        except CorruptIndexError as exc:
            problems.append(str(exc))
        files += len(record["files"]) + (1 if record.get("checksums") else 0)
        size += sum(int(v) for v in record["files"].values())
        spec = record.get("deleted")
        if spec:
            files += 1
            size += int(spec["size"])
            try:
                rows = read_array(directory / spec["file"], np.int64, spec["size"], spec.get("xxh3"))
                check_tombstones(directory / spec["file"], rows, int(record["rows"]))
            except CorruptIndexError as exc:
                problems.append(str(exc))
    for spec in (body[key] for key in FITTED_KEYS if body.get(key)):
        files += 1
        size += int(spec["size"])
        try:
            read_array(directory / spec["file"], np.float32, spec["size"], spec.get("xxh3"))
        except CorruptIndexError as exc:
            problems.append(str(exc))
    return {
        "path": str(directory),
        "generation": int(body["generation"]),
        "segments": len(body["segments"]),
        "files": files + 1,  # and the manifest
        "bytes": size,
        "seconds": round(time.perf_counter() - started, 3),
        "problems": problems,
        "warnings": warnings,
    }
