"""Checksums of the embedded index's files: recorded at commit, checked before the bytes are used.

Every segment file is hashed in blocks of 64 KiB (xxh3-64) when the segment is written; the block hashes of
all its files go to `checksums.xxh3` in the segment directory, whose own xxh3-128 digest the manifest records
(and the manifest carries a checksum of its body). Tombstone and projection files, read whole, carry an
xxh3-128 digest of their bytes in the manifest.

Reading checks the bytes before they can make a result:

* small files — offsets, the sparse term table, ids (≤ `CHECK_AT_OPEN` bytes) — whole, when the segment
  opens, together with their structure (offsets ascending and ending at the data's size, term ids sorted);
* large files — dense vectors, ColBERT tokens, postings, document texts — block by block, the first time a
  search reads a block (a block once checked is not hashed again), and whole, in the background, once an
  index that fits in memory is open (`EmbeddedIndex.verify` and `trivec index verify` check everything).

A mismatch raises `CorruptIndexError` naming the file and the bytes, before any score is computed from them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from trivec.errors import CorruptIndexError

__all__ = [
    "BLOCK",
    "CHECKSUMS",
    "BlockCheck",
    "CorruptIndexError",
    "digest",
    "read_checksums",
    "write_checksums",
]

BLOCK = 64 * 1024
CHECKSUMS = "checksums.xxh3"
CHECK_AT_OPEN = 4 * 1024 * 1024  # files up to this size are checked whole when a segment opens
READ_CHUNK = 16 * BLOCK


def digest(data: Any) -> str:
    """xxh3-128 of bytes (or any buffer), as hex."""
    return xxhash.xxh3_128_hexdigest(data)


def file_digest(path: Path) -> str:
    hasher = xxhash.xxh3_128()
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def block_count(size: int) -> int:
    return -(-size // BLOCK)


def block_hashes(path: Path) -> np.ndarray:
    """xxh3-64 of each 64 KiB block of a file (the last one may be shorter)."""
    out: list[int] = []
    with path.open("rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            view = memoryview(chunk)
            out.extend(xxhash.xxh3_64_intdigest(view[i : i + BLOCK]) for i in range(0, len(chunk), BLOCK))
    return np.asarray(out, dtype=np.uint64)


def write_checksums(directory: Path, sizes: dict[str, int]) -> dict[str, Any]:
    """Hash every file named in `sizes` (sorted by name) into `checksums.xxh3`; the record the segment's
    manifest entry keeps (the file's size and digest)."""
    parts = [block_hashes(directory / name) for name in sorted(sizes)]
    data = np.concatenate(parts).astype("<u8") if parts else np.zeros(0, "<u8")
    raw = data.tobytes()
    path = directory / CHECKSUMS
    with path.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    return {"file": CHECKSUMS, "block": BLOCK, "size": len(raw), "xxh3": digest(raw)}


def read_checksums(directory: Path, record: dict[str, Any], sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """The block hashes of each file, from `checksums.xxh3` checked against the manifest's record."""
    path = directory / str(record["file"])
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptIndexError(f"{path} is missing (the manifest lists it)") from None
    if len(raw) != int(record["size"]) or digest(raw) != record["xxh3"]:
        raise CorruptIndexError(f"{path} does not match its checksum in the manifest: the file is damaged")
    if int(record.get("block", BLOCK)) != BLOCK:
        raise CorruptIndexError(f"{path}: block size {record.get('block')} is not {BLOCK}")
    hashes = np.frombuffer(raw, dtype="<u8").astype(np.uint64)
    out: dict[str, np.ndarray] = {}
    start = 0
    for name in sorted(sizes):
        n = block_count(int(sizes[name]))
        out[name] = hashes[start : start + n]
        start += n
    if start != hashes.shape[0]:
        raise CorruptIndexError(f"{path} holds {hashes.shape[0]} block hashes, the files need {start}")
    return out


class BlockCheck:
    """The checksum state of one mapped file: which of its blocks were hashed and found intact."""

    def __init__(self, path: Path, data: np.ndarray, hashes: np.ndarray) -> None:
        self.path = path
        self.bytes = data.reshape(-1).view(np.uint8) if data.size else np.zeros(0, np.uint8)
        self._view = self.bytes.data  # a memoryview: slices hash without copies
        self.hashes = hashes
        self.ok = np.zeros(hashes.shape[0], dtype=bool)
        self.complete = hashes.shape[0] == 0
        self._lock = threading.Lock()

    def all(self) -> None:
        """Check every block not checked yet."""
        if not self.complete:
            self._blocks(np.flatnonzero(~self.ok))

    def ranges(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """Check the blocks holding bytes `[starts[i], ends[i])` (empty ranges ignored)."""
        if self.complete:
            return
        starts = np.asarray(starts, dtype=np.int64).reshape(-1)
        ends = np.asarray(ends, dtype=np.int64).reshape(-1)
        keep = ends > starts
        if not keep.all():
            starts, ends = starts[keep], ends[keep]
        if starts.size == 0:
            return
        first, last = starts // BLOCK, (ends - 1) // BLOCK
        span = last - first
        if int(span.max()) <= 1:
            blocks = np.concatenate([first, last])
        else:  # long ranges (a common term's postings): every block between first and last
            counts = span + 1
            offsets = np.repeat(np.cumsum(counts) - counts, counts)
            blocks = np.repeat(first, counts) + (np.arange(int(counts.sum()), dtype=np.int64) - offsets)
        blocks = blocks[~self.ok[blocks]]
        if blocks.size:
            self._blocks(np.unique(blocks))

    def rows(self, rows: np.ndarray, row_bytes: int) -> None:
        """Check the blocks of fixed-size rows."""
        if not self.complete:
            rows = np.asarray(rows, dtype=np.int64)
            self.ranges(rows * row_bytes, (rows + 1) * row_bytes)

    def _blocks(self, blocks: Iterable[int]) -> None:
        view, hashes = self._view, self.hashes
        for block in blocks:
            b = int(block)
            start = b * BLOCK
            if xxhash.xxh3_64_intdigest(view[start : start + BLOCK]) != int(hashes[b]):
                end = min(start + BLOCK, len(view))
                raise CorruptIndexError(
                    f"{self.path}: bytes {start:,}–{end:,} do not match their checksum: the file is damaged "
                    "(`trivec index verify` checks the whole index)"
                )
            self.ok[b] = True
        with self._lock:
            if not self.complete and self.ok.all():
                self.complete = True


def check_offsets(path: Path, offsets: np.ndarray, total: int) -> None:
    """Offsets into a data file must start at 0, never decrease, and end at the data's length."""
    if offsets.shape[0] == 0:
        raise CorruptIndexError(f"{path} is empty: the offsets are damaged")
    if (
        int(offsets[0]) != 0
        or int(offsets[-1]) != total
        or (offsets.shape[0] > 1 and (np.diff(offsets) < 0).any())
    ):
        raise CorruptIndexError(
            f"{path}: the offsets are damaged (they must rise from 0 to {total:,}; they run from "
            f"{int(offsets[0]):,} to {int(offsets[-1]):,})"
        )


def check_sorted(path: Path, values: np.ndarray) -> None:
    """Term ids must be strictly ascending and non-negative."""
    if values.shape[0] and (int(values[0]) < 0 or (values.shape[0] > 1 and (np.diff(values) <= 0).any())):
        raise CorruptIndexError(f"{path}: the term ids are not ascending: the file is damaged")
