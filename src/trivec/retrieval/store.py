"""The embedded index's storage engine: segments, tombstones and the manifest that commits them.

The directory's files are described in `layout.py`.

Writers stage new segments and tombstones, then commit by replacing the manifest; files no manifest names
are removed by the next writer. Readers map the files the manifest names and see one commit at a time
(a search re-reads the manifest when it changed); open mappings survive the removal of superseded files.

`SegmentStore` writes (one writer at a time, under the lock; `transaction()` groups changes into one
commit), merges segments, removes unreferenced files, and keeps a `Snapshot` of the last commit that
searches read. It knows nothing of models or queries: the embedded index encodes, `segment_search.py` scores.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trivec import heap
from trivec.errors import InputError
from trivec.inference.encoder import EncodeResult
from trivec.inference.text_outputs import ColbertCoder
from trivec.io import fsync_dir
from trivec.progress import Step
from trivec.retrieval.colbert import fills_fit_sample, fit_codec, leading_for_fit, popping
from trivec.retrieval.committed import CommittedStore
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.identity import ModelIdentity
from trivec.retrieval.layout import (
    SEGMENTS,
    TOMBSTONES,
    check_target,
    remove_unreferenced,
    retrying,
    write_fitted,
    write_tombstones,
)
from trivec.retrieval.manifest import (
    WriterLock,
    locked_for_replacing,
    new_body,
    now,
    read_manifest,
    write_manifest,
)
from trivec.retrieval.segment import Segment
from trivec.retrieval.segment_sizes import (
    copy_live_rows,
    merge_groups,
    segment_cuts,
    smallest_to_merge,
    staged_sample,
    staged_tokens,
)
from trivec.retrieval.segment_writer import SegmentWriter
from trivec.retrieval.settings import IndexSettings

logger = logging.getLogger("trivec.retrieval")


class SegmentStore(CommittedStore):
    """The segments of one index directory, the rows deleted from them (`CommittedStore`: as committed), and
    the writer's pending changes."""

    def __init__(self, directory: Path, body: dict[str, Any], lock_timeout: float = 10.0) -> None:
        self._lock = WriterLock(directory, lock_timeout)
        self._txn = 0
        self._dirty = False
        self._uncommitted: set[str] = set()  # files/dirs written since the last commit
        self._changed_tombstones: set[str] = set()
        super().__init__(directory, body)

    def _has_pending_writes(self) -> bool:
        return self._lock.held or self._dirty

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(
        cls, directory: Path, identity: ModelIdentity, settings: IndexSettings, overwrite: bool
    ) -> SegmentStore:
        """A new empty store in `directory` (which must be absent, empty, or — with `overwrite` — an index)."""
        check_target(directory, overwrite)
        settings.check_colbert_dim(identity.colbert_dim)
        if directory.exists() and any(directory.iterdir()):
            with locked_for_replacing(directory):
                shutil.rmtree(directory)  # an index, and overwrite (check_target)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SEGMENTS).mkdir(exist_ok=True)
        (directory / TOMBSTONES).mkdir(exist_ok=True)
        body = new_body(identity.to_dict(), settings.to_dict())
        write_manifest(directory, body)
        return cls(directory, body)

    @classmethod
    def open(cls, directory: Path, lock_timeout: float = 10.0) -> SegmentStore:
        """The store of an existing index directory, at its last commit."""
        return retrying(lambda: cls(directory, read_manifest(directory), lock_timeout), directory)

    # ------------------------------------------------------------------ writing: lock, commit, rollback
    def _begin_write(self) -> None:
        if self._lock.held:
            return
        self._lock.acquire()
        try:
            self._follow(read_manifest(self.directory))
            self._collect_garbage()
        except BaseException:
            self._lock.release()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[SegmentStore]:
        """Group changes into one commit; an exception rolls all of them back."""
        self._begin_write()
        self._txn += 1
        try:
            yield self
        except BaseException:
            self._txn -= 1
            if self._txn == 0:
                self.rollback()
            raise
        self._txn -= 1
        if self._txn == 0:
            self._commit()

    def save(self) -> None:
        if self._txn:
            raise InputError("save() inside a transaction: the transaction commits when its block ends")
        self._commit()

    def _commit(self) -> None:
        if not self._dirty:
            self._lock.release()
            return
        body = self._body
        generation = int(body["generation"]) + 1
        write_tombstones(
            self.directory, body["segments"], self._deleted, self._changed_tombstones, generation
        )
        fsync_dir(self.directory / SEGMENTS)
        body["generation"] = generation
        body["updated"] = now()
        write_manifest(self.directory, body)
        self._dirty = False
        self._uncommitted.clear()
        self._changed_tombstones.clear()
        self._stamp = self._manifest_stamp()
        try:
            self._collect_garbage()
        finally:
            self._lock.release()

    def rollback(self) -> None:
        """Drop every uncommitted change and go back to the last commit."""
        for name in list(self._uncommitted):
            path = self.directory / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._uncommitted.clear()
        self._changed_tombstones.clear()
        self._dirty = False
        try:
            self._load(read_manifest(self.directory))
        finally:
            self._lock.release()

    def _collect_garbage(self) -> None:
        """Remove files of crashed writers and of superseded commits (only under the writer lock)."""
        remove_unreferenced(self.directory, self._body, self._uncommitted)

    # ------------------------------------------------------------------ writing: segments, deletions, merges
    def _new_writer(self, colbert_full_dim: int | None) -> SegmentWriter:
        name = f"{int(self._body['generation']) + 1:08d}-{uuid.uuid4().hex[:8]}"
        self._uncommitted.add(f"{SEGMENTS}/{name}")
        return SegmentWriter(
            self.directory / SEGMENTS / name,
            self.identity.dense_dim,
            self.stores_sparse,
            self.codec if self.stores_colbert else None,
            colbert_full_dim,
            self.settings.dense_quantization,
        )

    def colbert_coder(self) -> ColbertCoder | None:
        """How rows are coded as they are encoded: `codec.encode` once settled; the float16 rows residual codes
        stage while their codebook waits (`ColbertCodec.staging`); None while a projection waits."""
        if not self.stores_colbert or self.codec.waits_for_projection(self.settings.colbert_dim):
            return None
        return self.codec.staging().encode if self.codec.staged else self.codec.encode

    def _fit_codec(self, colbert: list[np.ndarray], staged: list[np.ndarray], residual: bool) -> None:
        """Fit what the codec learns from the first documents' ColBERT rows (`fit_codec`: the projection; the
        residual codebook when `residual`, on `staged` rows too) and write it beside the segments, committed
        with them (`colbert.projection.<id>.f32`, `colbert.residual.<id>.f32`)."""
        self.codec, fitted = fit_codec(self.codec, colbert, self.settings.colbert_dim, staged, residual)
        for key, record in write_fitted(self.directory, fitted).items():
            self._uncommitted.add(record["file"])
            self._body[key] = record

    def _settle_staged(self) -> None:
        """Once staged float16 rows fill the sample, fit the residual codebook and code them, segment by segment."""
        if not (self.codec.staged and fills_fit_sample(staged_tokens(self.segments, self.snapshot.live))):
            return
        self._fit_codec([], [staged_sample(self.segments, self.snapshot.live)], True)
        heap.trim()  # the sample and the fit's buffers given back before the staged rows are coded
        for i in reversed([i for i, segment in enumerate(self.segments) if segment.colbert_staged]):
            self._merge([i])  # each on its own: no segment past max_segment_rows

    def _attach(self, record: dict[str, Any], chunks: int, documents: int, chunked: bool) -> None:
        record["deleted"] = None
        self._body["segments"].append(record)
        self.segments = [*self.segments, Segment(self.directory / SEGMENTS / record["name"], record)]
        self._body["chunks"] += chunks
        self._body["documents"] += documents
        self._body["chunked"] = bool(self._body.get("chunked")) or chunked
        self._rebuild_views(prefault=False)
        self._dirty = True

    def write_segment(
        self,
        batches: Iterable[tuple[list[Chunk], EncodeResult]],
        check: Callable[[Sequence[Chunk]], None] | None = None,
    ) -> int:
        """Write encoded `batches` as one segment, or as several of at most `max_segment_rows` rows (a new
        one begins at the first document that would not fit; a document's chunks stay in one segment, so
        one whose chunks alone pass the limit, or continue from the previous batch, makes its segment
        larger) (`check`: run on each batch first); a staged segment whose rows fill the residual codebook's
        sample ends too (`_settle_staged`). Returns the rows written. Call inside `transaction()`."""
        cap = self.settings.max_segment_rows
        if self.stores_colbert and self.codec.waits_for_projection(self.settings.colbert_dim):
            batches = iter(batches)
            held = leading_for_fit(batches, self.codec)  # the projection is fitted on them first
            self._fit_codec([rows for _, encoded in held for rows in encoded.colbert or []], [], False)
            batches = itertools.chain(popping(held), batches)
        writer: SegmentWriter | None = None
        record: dict[str, Any] | None = None
        total, rows, chunked = 0, 0, False
        doc_ids: set[str] = set()
        last_doc: str | None = None
        try:
            for batch, encoded in batches:
                if check is not None:
                    check(batch)
                cuts = [] if cap is None else segment_cuts(batch, rows, cap, last_doc)
                if writer is not None and writer.staged:  # staged rows that fill the codebook's sample end
                    staged = staged_tokens(self.segments, self.snapshot.live) + writer.colbert_rows[-1]
                    start = next((i for i, c in enumerate(batch) if c.doc_id != last_doc), None)
                    if fills_fit_sample(staged) and start is not None:  # their segment, at a document's start
                        cuts = sorted({*cuts, start})
                bounds = [0, *cuts, len(batch)]
                for lo, hi in itertools.pairwise(bounds):
                    if lo == hi:
                        continue
                    if lo in cuts and writer is not None:  # the segment ends: begin the next
                        self._attach(
                            writer.finish(self.settings.ann_for(writer.rows)), rows, len(doc_ids), chunked
                        )
                        writer, rows, chunked, doc_ids = None, 0, False, set()
                        self._settle_staged()
                    part = batch[lo:hi]
                    vectors = encoded if (lo, hi) == (0, len(batch)) else encoded.rows(lo, hi)
                    if writer is None:
                        full = vectors.colbert[0].shape[1] if vectors.colbert else self.identity.colbert_dim
                        writer = self._new_writer(full)
                    writer.append(
                        part,
                        vectors.dense,
                        vectors.sparse,
                        vectors.colbert,
                        colbert_codes=vectors.colbert_codes,
                    )
                    rows += len(part)
                    total += len(part)
                    doc_ids.update(c.doc_id for c in part)
                    chunked = chunked or any(c.id != c.doc_id for c in part)
                    del vectors
                if batch:
                    last_doc = batch[-1].doc_id
                del encoded  # written: let it go before the next batch is encoded
            if writer is not None:
                record = writer.finish(self.settings.ann_for(writer.rows))
        except BaseException:
            if writer is not None and record is None:
                writer.abort()
            raise
        if record is not None:
            self._attach(record, rows, len(doc_ids), chunked)
        self._settle_staged()
        return total

    def mark_deleted(self, doc_ids: Sequence[str]) -> int:
        """Delete every live row of `doc_ids` (ids the snapshot has); returns the rows deleted."""
        if not doc_ids:
            return 0
        present = self.snapshot.locate()
        per_segment: dict[int, list[int]] = {}
        for doc_id in doc_ids:
            for seg_index, row in present[doc_id]:
                per_segment.setdefault(seg_index, []).append(row)
        removed = 0
        for seg_index, rows in per_segment.items():
            name = self.segments[seg_index].name
            old = self._deleted.get(name, np.zeros(0, dtype=np.int64))
            self._deleted[name] = np.union1d(old, np.asarray(rows, dtype=np.int64))
            self._changed_tombstones.add(name)
            removed += len(rows)
        self._body["chunks"] -= removed
        self._body["documents"] -= len(doc_ids)
        self._drop_empty_segments()
        self._rebuild_views(prefault=False)
        self._dirty = True
        return removed

    def _drop_empty_segments(self) -> None:
        keep = [
            i
            for i, seg in enumerate(self.segments)
            if self._deleted.get(seg.name, np.zeros(0)).size < seg.rows
        ]
        if len(keep) == len(self.segments):
            return
        self.segments = [self.segments[i] for i in keep]
        self._body["segments"] = [self._body["segments"][i] for i in keep]

    def _live_rows(self) -> list[int]:
        return [seg.rows - self._deleted.get(seg.name, np.zeros(0)).size for seg in self.segments]

    def maybe_merge(self) -> None:
        """Merge the smallest segments while there are more than `max_segments`; with `max_segment_rows`,
        only as many of the smallest as fit under it together (none if not two)."""
        if len(self.segments) > self.settings.max_segments:
            self._merge(
                smallest_to_merge(
                    self._live_rows(), self.settings.max_segments, self.settings.max_segment_rows
                )
            )

    def compact(self) -> None:
        """Merge every segment into one and drop deleted rows (rebuilding the ANN graph if one is due); with
        `max_segment_rows`, neighbouring segments are merged into as few as fit under it."""
        with self.transaction():
            if not (len(self.segments) > 1 or self._deleted):
                return
            groups = merge_groups(self._live_rows(), self.settings.max_segment_rows)
            for group in reversed(groups):  # from the last: a merge keeps the positions before it
                if len(group) > 1 or any(self.segments[i].name in self._deleted for i in group):
                    self._merge(group)

    def _merge(self, chosen: list[int]) -> None:
        if not chosen:
            return
        writer = self._new_writer(self.identity.colbert_dim)
        try:
            with Step(
                f"merging {len(chosen)} segment(s) of {sum(self.segments[i].rows for i in chosen):,} rows"
            ):
                for i in chosen:
                    copy_live_rows(self.segments[i], self.snapshot.live[i], writer)
                record = writer.finish(self.settings.ann_for(writer.rows))
        except BaseException:
            writer.abort()
            raise
        record["deleted"] = None
        names = {self.segments[i].name for i in chosen}
        position = min(chosen)
        kept_records = [r for r in self._body["segments"] if r["name"] not in names]
        kept_records.insert(position, record)
        self._body["segments"] = kept_records
        for name in names:
            self._deleted.pop(name, None)
            self._changed_tombstones.discard(name)
        self.segments = [Segment(self.directory / SEGMENTS / r["name"], r) for r in kept_records]
        self._rebuild_views(prefault=False)
        self._dirty = True

    def close(self) -> None:
        """Commit pending changes (if any) and release the writer lock."""
        if self._txn:
            return
        if self._dirty:
            self._commit()
        self._lock.release()
