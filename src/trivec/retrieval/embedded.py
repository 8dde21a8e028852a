"""The embedded index: a directory of immutable, memory-mapped segments plus an atomically replaced manifest.

    index/
      MANIFEST.json        the commit point (see manifest.py); names every live file
      LOCK                 flock held by the single writer while it has uncommitted changes
      segments/<name>/     immutable segment files (see segment.py)
      tombstones/<name>.<generation>.del   int64 rows deleted from a segment, as of that commit
      colbert.projection.<id>.f32          reduced-dimension map, when ColBERT dimensions are reduced

Writers stage new segments and tombstones, then commit by replacing the manifest; files no manifest names
are removed by the next writer. Readers map the files the manifest names and see one commit at a time
(a search re-reads the manifest when it changed); open mappings survive the removal of superseded files.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trivec.compiled import one_thread, rows_times
from trivec.errors import InputError
from trivec.inference import scoring
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.scoring import maxsim_chunked
from trivec.inference.sparse import SparseVector
from trivec.progress import Step
from trivec.retrieval import sparse_scorer
from trivec.retrieval.base import (
    Hit,
    Index,
    IndexSettings,
    SearchPlan,
    already_indexed,
    not_indexed,
)
from trivec.retrieval.colbert import ColbertCodec, fit_projection
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.fusion import fuse, merge_top_k, top_k
from trivec.retrieval.identity import ModelIdentity, identify
from trivec.retrieval.integrity import digest
from trivec.retrieval.manifest import (
    MANIFEST,
    NotAnIndexError,
    WriterLock,
    read_manifest,
    write_manifest,
)
from trivec.retrieval.segment import (
    CorruptIndexError,
    Segment,
    SegmentWriter,
    fsync_dir,
)
from trivec.retrieval.snapshot import Snapshot
from trivec.retrieval.sparse_scorer import SparseScorer, SparseScores

logger = logging.getLogger("trivec.retrieval")
SEGMENTS = "segments"
TOMBSTONES = "tombstones"
PREFAULT_MEMORY_FRACTION = 0.5  # prefault vectors only while they fit in this share of physical memory
OPEN_RETRY_SECONDS = 30.0  # how long a reader keeps chasing a writer that commits faster than it maps


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class EmbeddedIndex(Index):
    """Dense (exact, or faiss HNSW/IVF per large segment), sparse inverted index, ColBERT store, documents."""

    def __init__(
        self,
        directory: Path,
        body: dict[str, Any],
        embedder: Embedder | None = None,
        lock_timeout: float = 10.0,
    ) -> None:
        super().__init__(embedder)
        self.directory = directory
        self.location = str(directory)
        self._lock = WriterLock(directory, lock_timeout)
        self._txn = 0
        self._dirty = False
        self._uncommitted: set[str] = set()  # files/dirs written since the last commit
        self._changed_tombstones: set[str] = set()
        self._sparse = SparseScorer()
        self._background: list[threading.Thread] = []
        self._load(body)

    # ------------------------------------------------------------------ opening
    @classmethod
    def new(
        cls, directory: Path, embedder: Embedder, settings: IndexSettings, overwrite: bool = False
    ) -> EmbeddedIndex:
        """A new empty index in `directory` (which must be absent, empty, or — with `overwrite` — an index)."""
        check_target(directory, overwrite)
        identity = identify(embedder)
        if (
            settings.colbert_dim is not None
            and identity.colbert_dim is not None
            and not 1 <= settings.colbert_dim < identity.colbert_dim
        ):
            raise InputError(
                f"colbert_dim must be between 1 and {identity.colbert_dim - 1}, got {settings.colbert_dim}"
            )
        if directory.exists() and any(directory.iterdir()):
            shutil.rmtree(directory)  # an index, and overwrite (check_target)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SEGMENTS).mkdir(exist_ok=True)
        (directory / TOMBSTONES).mkdir(exist_ok=True)
        body = {
            "generation": 0,
            "created": _now(),
            "updated": _now(),
            "model": identity.to_dict(),
            "settings": settings.to_dict(),
            "projection": None,
            "segments": [],
            "documents": 0,
            "chunks": 0,
            "chunked": False,
        }
        write_manifest(directory, body)
        return cls(directory, body, embedder)

    @classmethod
    def load(
        cls,
        directory: Path,
        model: str | os.PathLike[str] | Embedder | None = None,
        lock_timeout: float = 10.0,
    ) -> EmbeddedIndex:
        index = _retrying(lambda: cls(directory, read_manifest(directory), None, lock_timeout), directory)
        index._adopt_model(model)
        return index

    def _load(self, body: dict[str, Any]) -> None:
        """Map the files `body` names; the index changes only when every file is there (all or nothing)."""
        settings = IndexSettings.from_dict(body["settings"])
        projection = None
        if body.get("projection"):
            spec = body["projection"]
            projection = _read_array(
                self.directory / spec["file"], np.float32, spec["size"], spec.get("xxh3")
            ).reshape(spec["shape"])
        mapped = {seg.name: seg for seg in getattr(self, "segments", [])}  # segments never change: reuse maps
        segments = [
            mapped.get(r["name"]) or Segment(self.directory / SEGMENTS / r["name"], r)
            for r in body["segments"]
        ]
        deleted: dict[str, np.ndarray] = {}
        for record in body["segments"]:
            spec = record.get("deleted")
            if spec:
                rows = _read_array(self.directory / spec["file"], np.int64, spec["size"], spec.get("xxh3"))
                _check_tombstones(self.directory / spec["file"], rows, int(record["rows"]))
                deleted[record["name"]] = rows
        self._body = copy.deepcopy(body)
        self.identity = ModelIdentity.from_dict(body["model"])
        self.settings = settings
        self.codec = ColbertCodec(settings.colbert_dtype, projection)
        self.segments = segments
        self._deleted = deleted
        self._rebuild_views()
        # not the file's stamp now: a commit may have landed since `body` was read; the next refresh checks
        self._stamp: bytes | None = None

    def _prefault_in_background(self) -> None:
        """Map the random-access files of new segments into memory on a background thread (see
        `segment.prefault`), unless the index's vectors would take more than half of the machine's memory."""
        todo = [seg for seg in self.segments if not seg.prefaulted]
        if not todo:
            return
        total = sum(seg.random_access_bytes() for seg in self.segments)
        if total > PREFAULT_MEMORY_FRACTION * _physical_memory():
            return
        for seg in todo:
            seg.prefaulted = True

        def prepare() -> None:
            for seg in todo:
                seg.prefault()
            for seg in todo:  # then every block checked (a search checks the blocks it reads meanwhile)
                try:
                    seg.check_all()
                except CorruptIndexError as exc:
                    seg.damage = str(exc)
                    logger.error("%s", exc)

        thread = threading.Thread(target=prepare, name="trivec-prefault", daemon=True)
        self._background.append(thread)
        thread.start()

    def wait_checked(self, timeout: float | None = None) -> bool:
        """Wait for the background check of the open segments (see `_prefault_in_background`); whether every
        one of them was checked whole (an index too large to prefault is checked as searches read it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._background):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return all(seg.checked for seg in self._snap.segments)

    def _rebuild_views(self) -> None:
        self._prefault_in_background()
        if any(seg.has_sparse or seg.has_colbert for seg in self.segments):
            _warm_up_kernels()
        self._snap = Snapshot.build(self.segments, self._deleted)  # one assignment: searches see old or new
        self._sparse.prune({seg.name for seg in self.segments})

    def _manifest_stamp(self) -> bytes:
        """The manifest's bytes (a few KB; reading them costs ≈ 10 µs). Not `stat`: two commits within the
        file system's timestamp tick can leave the same size, mtime and even inode (reused by the rename),
        and a reader would then never see the second commit."""
        try:
            return (self.directory / MANIFEST).read_bytes()
        except FileNotFoundError:
            return b""

    def refresh(self) -> bool:
        """Load the latest commit if another process made one (not while this one has pending changes)."""
        if self._lock.held or self._dirty:
            return False
        stamp = self._manifest_stamp()
        if stamp == self._stamp:
            return False

        def load() -> bool:
            body = read_manifest(self.directory)
            if body["generation"] == self._body["generation"]:
                self._stamp = stamp
                return False
            self._load(body)
            return True

        return _retrying(load, self.directory)

    # ------------------------------------------------------------------ writing: lock, commit, rollback
    def _begin_write(self) -> None:
        if self._lock.held:
            return
        self._lock.acquire()
        try:
            body = read_manifest(self.directory)
            if body["generation"] != self._body["generation"]:
                self._load(body)
            self._collect_garbage()
        except BaseException:
            self._lock.release()
            raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[EmbeddedIndex]:
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

    def _operation(self) -> contextlib.AbstractContextManager[EmbeddedIndex]:
        """One change: its own commit outside a transaction, part of the transaction inside one."""
        return self.transaction()

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
        tomb_dir = self.directory / TOMBSTONES
        tomb_dir.mkdir(exist_ok=True)
        for record in body["segments"]:
            name = record["name"]
            if name not in self._changed_tombstones:
                continue
            rows = self._deleted.get(name)
            if rows is None or rows.size == 0:
                record["deleted"] = None
                continue
            file = f"{TOMBSTONES}/{name}.{generation}.del"
            path = self.directory / file
            raw = np.ascontiguousarray(rows, dtype=np.int64).tobytes()
            with path.open("wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            record["deleted"] = {"file": file, "count": int(rows.size), "size": len(raw), "xxh3": digest(raw)}
        fsync_dir(tomb_dir)
        fsync_dir(self.directory / SEGMENTS)
        body["generation"] = generation
        body["updated"] = _now()
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
        body = self._body
        keep_segments = {r["name"] for r in body["segments"]}
        keep_files = {r["deleted"]["file"] for r in body["segments"] if r.get("deleted")}
        if body.get("projection"):
            keep_files.add(body["projection"]["file"])
        keep_files |= self._uncommitted
        for entry in _listdir(self.directory / SEGMENTS):
            if entry.name not in keep_segments and f"{SEGMENTS}/{entry.name}" not in self._uncommitted:
                shutil.rmtree(entry, ignore_errors=True)
        for entry in _listdir(self.directory / TOMBSTONES):
            if f"{TOMBSTONES}/{entry.name}" not in keep_files:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
        for entry in _listdir(self.directory):
            stale_tmp = entry.name.startswith(f".{MANIFEST}.") and entry.name.endswith(".tmp")
            stale_projection = entry.name.startswith("colbert.projection.") and entry.name not in keep_files
            if stale_tmp or stale_projection:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()

    # ------------------------------------------------------------------ writing: changes
    def _ann_for(self, rows: int) -> dict[str, Any] | None:
        s = self.settings
        kind = s.dense_index
        if kind == "auto":
            kind = "hnsw" if rows >= s.ann_threshold else "flat"
        if kind == "flat":
            return None
        if kind == "hnsw":
            return {
                "kind": "hnsw",
                "m": s.hnsw_m,
                "ef_construction": s.hnsw_ef_construction,
                "storage": s.hnsw_storage,
            }
        return {"kind": "ivf"}

    def _new_writer(self, colbert_full_dim: int | None) -> SegmentWriter:
        name = f"{int(self._body['generation']) + 1:08d}-{uuid.uuid4().hex[:8]}"
        self._uncommitted.add(f"{SEGMENTS}/{name}")
        colbert = "colbert" in self.modes
        return SegmentWriter(
            self.directory / SEGMENTS / name,
            self.identity.dense_dim,
            "sparse" in self.modes,
            self.codec if colbert else None,
            self.codec.stored_dim(colbert_full_dim or 0) if colbert else None,
        )

    def _ensure_projection(self, colbert: Sequence[np.ndarray] | None) -> None:
        dim = self.settings.colbert_dim
        if dim is None or self.codec.projection is not None or "colbert" not in self.modes:
            return
        projection = fit_projection(list(colbert or []), dim)
        file = f"colbert.projection.{uuid.uuid4().hex[:8]}.f32"
        path = self.directory / file
        with path.open("wb") as handle:
            handle.write(projection.tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        self._uncommitted.add(file)
        self._body["projection"] = {
            "file": file,
            "shape": list(projection.shape),
            "size": path.stat().st_size,
            "xxh3": digest(projection.tobytes()),
        }
        self.codec = ColbertCodec(self.settings.colbert_dtype, projection)

    def _attach(self, record: dict[str, Any], chunks: int, documents: int, chunked: bool) -> None:
        record["deleted"] = None
        self._body["segments"].append(record)
        self.segments = [*self.segments, Segment(self.directory / SEGMENTS / record["name"], record)]
        self._body["chunks"] += chunks
        self._body["documents"] += documents
        self._body["chunked"] = bool(self._body.get("chunked")) or chunked
        self._rebuild_views()
        self._dirty = True

    def _add_chunks(
        self, chunks: Sequence[Chunk], batches: Iterable[tuple[list[Chunk], EncodeResult]] | None
    ) -> int:
        with self._operation():
            self._check_absent(chunks)
            stored = self._write_segment(chunks, batches, check=batches is not None)
            self._maybe_merge()
        return stored

    def _check_absent(self, chunks: Sequence[Chunk]) -> None:
        present = self._snap.locate()
        clash = [d for d in dict.fromkeys(c.doc_id for c in chunks) if d in present]
        if clash:
            raise already_indexed(clash)

    def _write_segment(
        self,
        chunks: Sequence[Chunk],
        batches: Iterable[tuple[list[Chunk], EncodeResult]] | None,
        check: bool = False,
    ) -> int:
        """Write one segment from `batches` (or by encoding `chunks`); returns the rows written."""
        writer: SegmentWriter | None = None
        rows, chunked = 0, False
        doc_ids: set[str] = set()
        try:
            for batch, encoded in batches if batches is not None else self._encoded(chunks):
                if check:
                    self._check_absent(batch)
                if writer is None:
                    self._ensure_projection(encoded.colbert)
                    full = encoded.colbert[0].shape[1] if encoded.colbert else self.identity.colbert_dim
                    writer = self._new_writer(full)
                writer.append(batch, encoded.dense, encoded.sparse, encoded.colbert)
                rows += len(batch)
                doc_ids.update(c.doc_id for c in batch)
                chunked = chunked or any(c.id != c.doc_id for c in batch)
            if writer is None:
                return 0
            record = writer.finish(self._ann_for(writer.rows))
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        self._attach(record, rows, len(doc_ids), chunked)
        return rows

    def _replace(self, doc_ids: Sequence[str], chunks: Sequence[Chunk], upsert: bool) -> int:
        with self._operation():
            present = self._snap.locate()
            missing = [d for d in doc_ids if d not in present]
            if missing and not upsert:
                raise not_indexed(missing, "update")
            self._mark_deleted([d for d in doc_ids if d in present])
            self._write_segment(chunks, None)
            self._maybe_merge()
        return len(chunks)

    def delete(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            raise InputError("no document ids to delete")
        with self._operation():
            present = self._snap.locate()
            missing = [d for d in dict.fromkeys(ids) if d not in present]
            if missing and not missing_ok:
                raise not_indexed(missing, "delete")
            removed = self._mark_deleted([d for d in dict.fromkeys(ids) if d in present])
        return removed

    def _mark_deleted(self, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        present = self._snap.locate()
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
        self._rebuild_views()
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

    def _maybe_merge(self) -> None:
        limit = self.settings.max_segments
        if len(self.segments) <= limit:
            return
        live = [seg.rows - self._deleted.get(seg.name, np.zeros(0)).size for seg in self.segments]
        order = np.argsort(live, kind="stable")
        self._merge(sorted(order[: len(self.segments) - limit + 1].tolist()))

    def compact(self) -> None:
        """Merge every segment into one and drop deleted rows (rebuilding the ANN graph if one is due)."""
        with self._operation():
            if len(self.segments) > 1 or self._deleted:
                self._merge(list(range(len(self.segments))))

    def _merge(self, chosen: list[int]) -> None:
        if not chosen:
            return
        rows = sum(self.segments[i].rows for i in chosen)
        with Step(f"merging {len(chosen)} segment(s) of {rows:,} rows"):
            self._merge_segments(chosen)

    def _merge_segments(self, chosen: list[int]) -> None:
        full_dim = self.identity.colbert_dim
        writer = self._new_writer(full_dim)
        try:
            for i in chosen:
                seg, live = self.segments[i], self._snap.live[i]
                seg.check_all()  # a damaged segment is never merged into a new one with fresh checksums
                rows = np.flatnonzero(live) if live is not None else np.arange(seg.rows)
                sparse_all = seg.sparse_vectors(rows) if seg.has_sparse else None
                for start in range(0, rows.shape[0], 4096):
                    part = rows[start : start + 4096]
                    chunks = [seg.chunk(int(r)) for r in part]
                    dense = np.asarray(seg.dense[part]) if seg.dense is not None else None
                    sparse = sparse_all[start : start + 4096] if sparse_all is not None else None
                    codes = [seg.colbert_codes(int(r)) for r in part] if seg.has_colbert else None
                    writer.append(chunks, dense, sparse, None, colbert_codes=codes)
            record = writer.finish(self._ann_for(writer.rows))
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
        self._rebuild_views()
        self._dirty = True

    # ------------------------------------------------------------------ lookup
    def get(self, doc_id: str) -> list[Chunk]:
        self.refresh()
        snap = self._snap
        rows = snap.locate().get(doc_id)
        if rows is None:
            raise InputError(f"unknown document id {doc_id!r}")
        chunks = [snap.segments[i].chunk(r) for i, r in rows]
        return sorted(chunks, key=lambda c: c.position)

    def doc_ids(self) -> list[str]:
        self.refresh()
        return list(self._snap.locate())

    def __len__(self) -> int:
        return int(self._body["documents"])

    @property
    def num_chunks(self) -> int:
        return int(self._body["chunks"])

    @property
    def generation(self) -> int:
        return int(self._body["generation"])

    # ------------------------------------------------------------------ search
    def search_encoded(self, encoded: EncodeResult, plan: SearchPlan) -> list[list[Hit]]:
        self.refresh()
        snap = self._snap  # this search reads one commit, whatever another thread does meanwhile
        for seg in snap.segments:
            if seg.damage is not None:
                raise CorruptIndexError(seg.damage)
        queries = _count(encoded)
        if queries == 0 or not snap.segments:
            return [[] for _ in range(queries)]
        grouped = bool(self._body.get("chunked"))
        depth = plan.candidates if (grouped or plan.mode in ("colbert", "hybrid")) else plan.top_k
        use_sparse = bool(encoded.sparse) and ("sparse" in plan.score_modes or "sparse" in plan.first_stage)
        dense_job: Future[list[tuple[np.ndarray, np.ndarray]]] | None = None
        dense_top: list[tuple[np.ndarray, np.ndarray]] | None = None
        if "dense" in plan.first_stage:
            dense_queries = np.asarray(encoded.dense, dtype=np.float32)
            # the graph walk (faiss / BLAS, GIL released) runs on a worker beside the sparse stage
            if use_sparse and _CORES > 1:
                dense_job = _first_stage_pool().submit(self._dense_top, snap, dense_queries, depth)
            else:
                dense_top = self._dense_top(snap, dense_queries, depth)
        out: list[list[Hit]] = []
        for q in range(queries):
            with (
                self._sparse_accumulate(snap, encoded.sparse[q])
                if use_sparse and encoded.sparse
                else contextlib.nullcontext(None)
            ) as accum:
                if dense_job is not None:
                    dense_top, dense_job = dense_job.result(), None
                out.append(self._search_one(snap, encoded, q, plan, depth, grouped, dense_top, accum))
        return out

    def _search_one(
        self,
        snap: Snapshot,
        encoded: EncodeResult,
        q: int,
        plan: SearchPlan,
        depth: int,
        grouped: bool,
        dense_top: list[tuple[np.ndarray, np.ndarray]] | None,
        accum: list[SparseScores | None] | None,
    ) -> list[Hit]:
        """Hits of query `q` from its first-stage results (dense top rows, sparse scores of every row)."""
        if plan.mode == "dense":
            assert dense_top is not None
            rows, values = dense_top[q]
            return self._hits(snap, rows, values, {"dense": values}, plan.top_k, grouped)
        if plan.mode == "sparse":
            assert accum is not None
            rows, values = self._sparse_top(snap, accum, depth)
            return self._hits(snap, rows, values, {"sparse": values}, plan.top_k, grouped)
        lists = []
        if dense_top is not None:
            lists.append(dense_top[q][0][:depth])
        if "sparse" in plan.first_stage and accum is not None:
            lists.append(self._sparse_top(snap, accum, depth)[0])
        candidates = _union(lists)
        per_mode: dict[str, np.ndarray] = {}
        if "dense" in plan.score_modes or plan.mode == "colbert":
            assert encoded.dense is not None
            # every candidate scored the same way, whichever list found it (the first stage's BLAS or
            # faiss scores differ from these in the last bits, and would flip near-ties)
            per_mode["dense"] = self._dense_scores(snap, encoded.dense[q], candidates)
        if accum is not None:
            per_mode["sparse"] = self._sparse_scores(snap, accum, candidates)
        if "colbert" in plan.score_modes:
            assert encoded.colbert is not None
            per_mode["colbert"] = self._colbert_scores(snap, encoded.colbert[q], candidates)
        scored = {m: per_mode[m] for m in plan.score_modes}
        fused = fuse(scored, plan.fusion, plan.weights)
        order = top_k(fused, candidates.shape[0])
        return self._hits(
            snap,
            candidates[order],
            fused[order],
            {m: v[order] for m, v in per_mode.items()},
            plan.top_k,
            grouped,
        )

    def _dense_top(self, snap: Snapshot, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (global rows, scores) of the top `k` live rows, best first (the graph walk on this
        thread alone: see `trivec.compiled.one_thread`)."""
        with one_thread():
            return self._dense_top_here(snap, queries, k)

    def _dense_top_here(
        self, snap: Snapshot, queries: np.ndarray, k: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        per_query: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(queries.shape[0])]
        for i, seg in enumerate(snap.segments):
            assert seg.dense is not None
            live = snap.live[i]
            ann = seg.ann()
            if ann is not None:
                faiss = importlib.import_module("faiss")

                kk = min(k, seg.rows)
                if seg.record["ann"]["kind"] == "hnsw":
                    params: Any = faiss.SearchParametersHNSW(efSearch=max(self.settings.hnsw_ef_search, kk))
                else:
                    params = faiss.SearchParametersIVF(nprobe=self.settings.ivf_nprobe)
                selector = snap.selector(i)
                if selector is not None:
                    params.sel = selector
                scores, rows = ann.search(queries, kk, params=params)
                rescore = seg.record["ann"].get("storage", "float32") != "float32"
                for q in range(queries.shape[0]):
                    ok = rows[q] >= 0
                    found = rows[q][ok]
                    # a graph over fp16 copies finds the rows; their scores come from the stored float32 vectors
                    values = (
                        np.einsum("ij,j->i", seg.dense_rows(found), queries[q]) if rescore else scores[q][ok]
                    )
                    per_query[q].append((values.astype(np.float64), found + snap.bases[i]))
                continue
            all_scores = rows_times(seg.dense_all(), queries)  # [n, Q]
            if live is not None:
                all_scores[~live] = -np.inf
            for q in range(queries.shape[0]):
                column = all_scores[:, q]
                best = top_k(column, k)
                best = best[np.isfinite(column[best])]
                per_query[q].append((column[best].astype(np.float64), best + snap.bases[i]))
        out = []
        for parts in per_query:
            values, rows = merge_top_k(parts, k)
            out.append((rows.astype(np.int64), values))
        return out

    def _dense_scores(self, snap: Snapshot, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=np.float32)
        q = np.asarray(query, dtype=np.float32)
        for s, pick, local in snap.by_segment(rows):
            # einsum, not BLAS: a few hundred rows need no thread pool (and waking OpenBLAS's costs more)
            out[pick] = np.einsum("ij,j->i", snap.segments[s].dense_rows(local), q)
        return out

    @contextlib.contextmanager
    def _sparse_accumulate(self, snap: Snapshot, query: SparseVector) -> Iterator[list[SparseScores | None]]:
        """Per segment: lexical matching scores of every row (None: the segment has no sparse vectors),
        valid inside the `with` block."""
        with contextlib.ExitStack() as stack:
            yield [
                stack.enter_context(self._sparse.scores(seg.name, seg.postings, query, snap.dead[i]))
                if seg.postings is not None
                else None
                for i, seg in enumerate(snap.segments)
            ]

    def _sparse_top(
        self, snap: Snapshot, accum: list[SparseScores | None], k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for i, scores in enumerate(accum):
            if scores is not None:
                rows, values = scores.top(k)
                parts.append((values, rows + snap.bases[i]))
        values, rows = merge_top_k(parts, k)
        return rows.astype(np.int64), values

    def _sparse_scores(
        self, snap: Snapshot, accum: list[SparseScores | None], rows: np.ndarray
    ) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=np.float64)
        for s, pick, local in snap.by_segment(rows):
            scores = accum[s]
            if scores is not None:
                out[pick] = scores.at(local)
        return out

    def _colbert_scores(self, snap: Snapshot, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim of the candidates: per segment one gather of their token vectors, one decode, one matmul."""
        out = np.zeros(rows.shape[0], dtype=np.float32)
        with one_thread():
            projected = self.codec.project(
                query, matmul=rows_times
            )  # a few hundred candidates: one thread, no OpenMP barrier to wait at
            for s, pick, local in snap.by_segment(rows):
                out[pick] = self._colbert_segment(snap.segments[s], projected, local)
        return out

    def _colbert_segment(self, segment: Segment, projected: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim of one segment's `rows`, their token rows gathered a chunk at a time (`maxsim_chunked`):
        int8 rows decoded with their scales, fp16 / fp32 as stored (the matmul widens them)."""
        tokens, lengths = segment.colbert_tokens(rows)
        codes, scales = segment.arrays["colbert.codes"], segment.arrays.get("colbert.scale")
        ends = np.cumsum(lengths)

        def fetch(i: int, j: int) -> np.ndarray:
            picked = tokens[ends[i] - lengths[i] : ends[j - 1]]
            block = codes[picked]
            return block if scales is None else self.codec.decode(block, scales[picked])

        return maxsim_chunked(projected, fetch, lengths, int(codes.shape[1]))

    def _hits(
        self,
        snap: Snapshot,
        rows: np.ndarray,
        fused: np.ndarray,
        per_mode: dict[str, np.ndarray],
        k: int,
        grouped: bool,
    ) -> list[Hit]:
        if not grouped:  # one hit per row: only the first k matter
            rows, fused, per_mode = rows[:k], fused[:k], {m: v[:k] for m, v in per_mode.items()}
        segs, local = snap.where(rows)
        modes = list(per_mode)
        columns = (
            list(zip(*(per_mode[m].tolist() for m in modes), strict=True)) if modes else [()] * rows.shape[0]
        )
        hits: list[Hit] = []
        seen: set[str] = set()
        for s, r, score, values in zip(segs.tolist(), local.tolist(), fused.tolist(), columns, strict=True):
            seg = snap.segments[s]
            doc_id = None
            if grouped:
                doc_id = seg.doc_id(r)
                if doc_id in seen:
                    continue
                seen.add(doc_id)
            hits.append(StoredHit(seg, r, score, dict(zip(modes, values, strict=True)), doc_id))
            if len(hits) == k:
                break
        return hits

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        self.refresh()
        groups = {
            "dense": ("dense.f32",),
            "dense_ann": ("dense.faiss",),
            "sparse": ("sparse.terms", "sparse.ptr", "sparse.docs", "sparse.vals"),
            "colbert": ("colbert.codes", "colbert.scale", "colbert.off"),
            "documents": ("docs.bin", "docs.off", "ids.bin", "ids.off", "doc_ids.bin", "doc_ids.off"),
        }
        sizes = dict.fromkeys(groups, 0)
        for seg in self.segments:
            for name, size in seg.nbytes().items():
                for group, files in groups.items():
                    if name in files:
                        sizes[group] += size
        rows = self._snap.rows
        return {
            "backend": "embedded",
            "path": str(self.directory),
            "generation": self.generation,
            "updated": self._body["updated"],
            "documents": len(self),
            "chunks": self.num_chunks,
            "model": self.identity.to_dict(),
            "modes": self.modes,
            "settings": self.settings.to_dict(),
            "segments": [
                {
                    "name": seg.name,
                    "rows": seg.rows,
                    "deleted": int(self._deleted.get(seg.name, np.zeros(0)).size),
                    "ann": (seg.record.get("ann") or {}).get("kind", "flat"),
                }
                for seg in self.segments
            ],
            "bytes": {**sizes, "total": sum(sizes.values())},
            "bytes_per_stored_row": {k: round(v / rows, 1) for k, v in sizes.items()} if rows else {},
        }

    def verify(self) -> dict[str, Any]:
        """Check the whole index: the manifest, every file's size and every block's checksum, the structure
        of offsets, postings and stored documents, the graph, tombstones and the ColBERT projection. Files
        are read afresh (blocks checked before are checked again). Returns `{"path", "generation",
        "segments", "files", "bytes", "seconds", "problems", "warnings"}`; `problems` (one line each, naming
        the file) is empty when the index is intact; `warnings` names segments without checksums."""
        started = time.perf_counter()
        problems: list[str] = []
        warnings: list[str] = []
        files = size = 0
        try:
            body = read_manifest(self.directory)
        except (CorruptIndexError, NotAnIndexError) as exc:
            return {
                "path": str(self.directory),
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
                    f"{self.directory / SEGMENTS / record['name']}: no checksums (written by an older trivec): "
                    "sizes and structure checked only; `trivec index compact` rewrites it with checksums"
                )
            try:
                problems.extend(Segment(self.directory / SEGMENTS / record["name"], record).verify())
            except CorruptIndexError as exc:
                problems.append(str(exc))
            files += len(record["files"]) + (1 if record.get("checksums") else 0)
            size += sum(int(v) for v in record["files"].values())
            spec = record.get("deleted")
            if spec:
                files += 1
                size += int(spec["size"])
                try:
                    rows = _read_array(
                        self.directory / spec["file"], np.int64, spec["size"], spec.get("xxh3")
                    )
                    _check_tombstones(self.directory / spec["file"], rows, int(record["rows"]))
                except CorruptIndexError as exc:
                    problems.append(str(exc))
        spec = body.get("projection")
        if spec:
            files += 1
            size += int(spec["size"])
            try:
                _read_array(self.directory / spec["file"], np.float32, spec["size"], spec.get("xxh3"))
            except CorruptIndexError as exc:
                problems.append(str(exc))
        return {
            "path": str(self.directory),
            "generation": int(body["generation"]),
            "segments": len(body["segments"]),
            "files": files + 1,  # and the manifest
            "bytes": size,
            "seconds": round(time.perf_counter() - started, 3),
            "problems": problems,
            "warnings": warnings,
        }

    def close(self) -> None:
        """Commit pending changes (if any) and release the writer lock."""
        if self._txn:
            return
        if self._dirty:
            self._commit()
        self._lock.release()


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


def build_embedded(
    target: Path,
    documents: Sequence[Any],
    model: str | os.PathLike[str] | Embedder,
    settings: IndexSettings,
    overwrite: bool,
    progress: bool,
) -> EmbeddedIndex:
    """`Index.build` for the embedded backend: build in `.<name>.building-<id>` beside `target`, then rename
    it into place (an index it replaces is renamed aside first and removed once the new one is in place)."""
    check_target(target, overwrite)
    missing = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        index = Index.create(staging, model, settings=settings)
        with index:
            index.progress = progress
            index.add(documents)
        embedder = index.embedder
        check_target(target, overwrite)  # again: the directory may have changed while the corpus encoded
        if target.exists() and any(target.iterdir()):
            aside = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
            os.rename(target, aside)
            os.rename(staging, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            if target.exists():
                target.rmdir()
            os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for directory in missing:  # nearest first: only directories this call created, and only if empty
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return EmbeddedIndex.load(target, embedder)


class StoredHit(Hit):
    """A hit of the embedded index: its ids, text, title and metadata are read from the segment when first
    asked for, so a search returns scores without decoding a hundred stored documents nobody looks at."""

    def __init__(
        self, segment: Segment, row: int, score: float, scores: dict[str, float], doc_id: str | None = None
    ) -> None:
        self.score, self.scores = score, scores
        self._segment, self._row = segment, row
        self._id: str | None = None
        self._doc_id = doc_id
        self._chunk: Chunk | None = None

    def _stored(self) -> Chunk:
        if self._chunk is None:
            self._chunk = self._segment.chunk(self._row)
        return self._chunk

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = self._segment.chunk_id(self._row)
        return self._id

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    @property
    def doc_id(self) -> str:
        if self._doc_id is None:
            self._doc_id = self._segment.doc_id(self._row)
        return self._doc_id

    @doc_id.setter
    def doc_id(self, value: str) -> None:
        self._doc_id = value

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as a plain `Hit` (the segment's memory maps stay behind)."""
        return (Hit, (self.id, self.doc_id, self.score, self.scores, self.text, self.title, self.metadata))

    @property
    def text(self) -> str:
        return self._stored().text

    @text.setter
    def text(self, value: str) -> None:
        self._stored().text = value

    @property
    def title(self) -> str | None:
        return self._stored().title

    @title.setter
    def title(self, value: str | None) -> None:
        self._stored().title = value

    @property
    def metadata(self) -> dict[str, Any]:
        return self._stored().metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._stored().metadata = value


T = TypeVar("T")


def _retrying(load: Callable[[], T], directory: Path) -> T:
    """Run `load` (which maps the files a manifest names); when a file is gone because a writer committed
    and removed it meanwhile, read the new manifest and try again. A damaged index still raises: a file
    missing while the generation stays the same is corruption, not a race. Retries are bounded by time, not
    by count, so a busy writer on a loaded machine cannot starve a reader into a false error."""
    deadline = time.monotonic() + OPEN_RETRY_SECONDS
    pause = 0.001
    while True:
        generation = read_manifest(directory)["generation"]
        try:
            return load()
        except CorruptIndexError:
            if read_manifest(directory)["generation"] == generation or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(2 * pause, 0.05)


_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def _first_stage_pool() -> ThreadPoolExecutor:
    """One worker thread shared by every index in the process: the dense first stage of a hybrid search."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="trivec-dense")


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _read_array(path: Path, dtype: type, size: int, checksum: str | None = None) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptIndexError(f"{path} is missing (the manifest lists it)") from None
    if len(raw) != size:
        raise CorruptIndexError(f"{path} has {len(raw)} bytes, the manifest says {size}: the file is damaged")
    if checksum is not None and digest(raw) != checksum:
        raise CorruptIndexError(f"{path} does not match its checksum in the manifest: the file is damaged")
    return np.frombuffer(raw, dtype=dtype).copy()


def _check_tombstones(path: Path, rows: np.ndarray, segment_rows: int) -> None:
    """Deleted rows: ascending, distinct, inside the segment (they index a mask)."""
    if rows.size and (
        int(rows[0]) < 0 or int(rows[-1]) >= segment_rows or (rows.size > 1 and (np.diff(rows) <= 0).any())
    ):
        raise CorruptIndexError(f"{path}: the deleted rows are not valid row numbers: the file is damaged")


def _listdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except FileNotFoundError:
        return []


@functools.cache
def _warm_up_kernels() -> None:
    """Compile (or load from numba's on-disk cache, ≈0.5 s) the sparse and MaxSim kernels on a background
    thread, once per process, so that the first query does not pay for it."""

    def warm() -> None:
        sparse_scorer.warm_up()
        scoring.warm_up()

    threading.Thread(target=warm, name="trivec-warm-up", daemon=True).start()


def _union(lists: list[np.ndarray]) -> np.ndarray:
    """The distinct rows of several rankings, in order of first appearance."""
    if not lists:
        return np.zeros(0, dtype=np.int64)
    joined = np.concatenate(lists).astype(np.int64)
    _, first = np.unique(joined, return_index=True)
    return joined[np.sort(first)]


def _count(encoded: EncodeResult) -> int:
    if encoded.dense is not None:
        return int(encoded.dense.shape[0])
    return len(encoded.sparse or encoded.colbert or [])


__all__ = ["EmbeddedIndex", "NotAnIndexError"]
