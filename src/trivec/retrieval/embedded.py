"""The embedded index: a directory of immutable, memory-mapped segments plus an atomically replaced manifest.

Three parts, one concern each: `SegmentStore` (`store.py`) keeps the files — segments, tombstones, the
manifest that commits them, merges, the writer lock; `SegmentSearch` (`segment_search.py`) answers the
searcher's questions from one snapshot of them; `searcher.py` ranks. This class joins them to the model:
it encodes what is added and searched, and checks document ids.

Readers map the files the manifest names and see one commit at a time (a search re-reads the manifest when
it changed); open mappings survive the removal of superseded files.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.inference import scoring
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.text_outputs import ColbertCoder
from trivec.retrieval import colbert, dense_codes, sparse_scorer
from trivec.retrieval.base import BaseIndex, already_indexed, not_indexed
from trivec.retrieval.colbert import ColbertCodec
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.identity import ModelIdentity, identify
from trivec.retrieval.layout import check_target, verify_index
from trivec.retrieval.manifest import NotAnIndexError
from trivec.retrieval.plan import SearchPlan
from trivec.retrieval.residual import RESIDUAL_BITS
from trivec.retrieval.searcher import Hit, candidate_depth, search
from trivec.retrieval.segment import CorruptIndexError, Segment
from trivec.retrieval.segment_search import SegmentSearch, count_queries
from trivec.retrieval.segment_sizes import staged_tokens
from trivec.retrieval.settings import IndexSettings
from trivec.retrieval.sparse_scorer import SparseScorer
from trivec.retrieval.store import SegmentStore


class EmbeddedIndex(BaseIndex):
    """Dense (exact, or faiss HNSW/IVF per large segment), sparse inverted index, ColBERT store, documents."""

    def __init__(self, store: SegmentStore, embedder: Embedder | None = None) -> None:
        super().__init__(embedder)
        self.store = store
        self.directory = store.directory
        self.location = str(store.directory)
        self._sparse = SparseScorer()  # per-segment scratch buffers of lexical scoring, reused by searches
        store.on_rebuild = self._segments_changed
        self._segments_changed(store.segments)

    # ------------------------------------------------------------------ opening
    @classmethod
    def new(
        cls, directory: Path, embedder: Embedder, settings: IndexSettings, overwrite: bool = False
    ) -> EmbeddedIndex:
        """A new empty index in `directory` (which must be absent, empty, or — with `overwrite` — an index)."""
        return cls(SegmentStore.create(directory, identify(embedder), settings, overwrite), embedder)

    @classmethod
    def load(
        cls,
        directory: Path,
        model: str | os.PathLike[str] | Embedder | None = None,
        lock_timeout: float = 10.0,
    ) -> EmbeddedIndex:
        index = cls(SegmentStore.open(directory, lock_timeout))
        index._adopt_model(model)
        return index

    def _segments_changed(self, segments: Sequence[Segment]) -> None:
        if any(seg.has_sparse or seg.has_colbert for seg in segments):
            _warm_up_kernels()
        if any(seg.quantization is not None for seg in segments):
            _warm_up_dense_codes()
        self._sparse.prune({seg.name for seg in segments})

    # ------------------------------------------------------------------ the store's state
    @property
    def identity(self) -> ModelIdentity:  # type: ignore[override]
        return self.store.identity

    @property
    def settings(self) -> IndexSettings:  # type: ignore[override]
        return self.store.settings

    @property
    def codec(self) -> ColbertCodec:
        return self.store.codec

    @property
    def segments(self) -> list[Segment]:
        return self.store.segments

    @property
    def generation(self) -> int:
        return self.store.generation

    @property
    def num_chunks(self) -> int:
        return self.store.chunks

    def __len__(self) -> int:
        return self.store.documents

    def refresh(self) -> bool:
        """Load the latest commit if another process made one (not while this one has pending changes)."""
        return self.store.refresh()

    def wait_checked(self, timeout: float | None = None) -> bool:
        """Wait for the background check of the open segments; whether every one was checked whole."""
        return self.store.wait_checked(timeout)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[EmbeddedIndex]:
        """Group changes into one commit; an exception rolls all of them back."""
        with self.store.transaction():
            yield self

    def rollback(self) -> None:
        """Drop every uncommitted change and go back to the last commit."""
        self.store.rollback()

    def save(self) -> None:
        self.store.save()

    def close(self) -> None:
        """Commit pending changes (if any) and release the writer lock."""
        self.store.close()

    def compact(self) -> None:
        """Merge every segment into one and drop deleted rows (rebuilding the ANN graph if one is due)."""
        self.store.compact()

    def verify(self) -> dict[str, Any]:
        """Check the whole index: the manifest, every file's size and every block's checksum, the structure
        of offsets, postings and stored documents, the graph, tombstones and the fitted ColBERT files. Files
        are read afresh (blocks checked before are checked again). Returns `{"path", "generation",
        "segments", "files", "bytes", "seconds", "problems", "warnings"}`; `problems` (one line each, naming
        the file) is empty when the index is intact; `warnings` names segments without checksums."""
        return verify_index(self.directory)

    # ------------------------------------------------------------------ writing
    def _add_chunks(
        self, chunks: Sequence[Chunk], batches: Iterable[tuple[list[Chunk], EncodeResult]] | None
    ) -> int:
        with self.store.transaction():
            self._check_absent(chunks)
            if batches is None:
                stored = self.store.write_segment(self._encoded(chunks))
            else:
                stored = self.store.write_segment(batches, check=self._check_absent)
            self.store.maybe_merge()
        return stored

    def _colbert_coder(self) -> ColbertCoder | None:
        return self.store.colbert_coder()

    def _takes_colbert_codes(self) -> bool:
        return self.store.stores_colbert and not self.codec.needs_fit(self.settings.colbert_dim)

    def _present(self, doc_ids: Sequence[str]) -> set[str]:
        self.refresh()
        present = self.store.snapshot.locate()
        return {d for d in doc_ids if d in present}

    def _check_absent(self, chunks: Sequence[Chunk]) -> None:
        present = self.store.snapshot.locate()
        clash = [d for d in dict.fromkeys(c.doc_id for c in chunks) if d in present]
        if clash:
            raise already_indexed(clash)

    def _replace(self, doc_ids: Sequence[str], chunks: Sequence[Chunk], upsert: bool) -> int:
        with self.store.transaction():
            present = self.store.snapshot.locate()
            missing = [d for d in doc_ids if d not in present]
            if missing and not upsert:
                raise not_indexed(missing, "update")
            self.store.mark_deleted([d for d in doc_ids if d in present])
            self.store.write_segment(self._encoded(chunks))
            self.store.maybe_merge()
        return len(chunks)

    def delete(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            raise InputError("no document ids to delete")
        with self.store.transaction():
            present = self.store.snapshot.locate()
            missing = [d for d in dict.fromkeys(ids) if d not in present]
            if missing and not missing_ok:
                raise not_indexed(missing, "delete")
            removed = self.store.mark_deleted([d for d in dict.fromkeys(ids) if d in present])
        return removed

    # ------------------------------------------------------------------ reading
    def get(self, doc_id: str) -> list[Chunk]:
        self.refresh()
        snap = self.store.snapshot
        rows = snap.locate().get(doc_id)
        if rows is None:
            raise InputError(f"unknown document id {doc_id!r}")
        chunks = [snap.segments[i].chunk(r) for i, r in rows]
        return sorted(chunks, key=lambda c: c.position)

    def doc_ids(self) -> list[str]:
        self.refresh()
        return list(self.store.snapshot.locate())

    def search_encoded(self, encoded: EncodeResult, plan: SearchPlan) -> list[list[Hit]]:
        self.refresh()
        snap = self.store.snapshot  # this search reads one commit, whatever another thread does meanwhile
        for seg in snap.segments:
            if seg.damage is not None:
                raise CorruptIndexError(seg.damage)
        queries = count_queries(encoded)
        if queries == 0 or not snap.segments:
            return [[] for _ in range(queries)]
        grouped = self.store.chunked
        segments = SegmentSearch(snap, snap.codec, self.settings, self._sparse)
        scorers = segments.scorers(encoded, plan, candidate_depth(plan, grouped))
        with contextlib.closing(scorers):  # a failed search gives the query's buffers back at once
            return search(scorers, plan, grouped)

    def info(self) -> dict[str, Any]:
        self.refresh()
        groups = {
            "dense": ("dense.f32",),
            "dense_ann": ("dense.faiss",),
            "dense_codes": (dense_codes.CODES, dense_codes.SCALE),
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
        snap = self.store.snapshot  # one commit's segments, deletions and codec
        rows = snap.rows
        return {
            "backend": "embedded",
            "path": str(self.directory),
            "generation": self.generation,
            "updated": self.store.updated,
            "documents": len(self),
            "chunks": self.num_chunks,
            "model": self.identity.to_dict(),
            "modes": self.modes,
            "settings": self.settings.to_dict(),
            "colbert_residual": _residual_info(snap.codec, staged_tokens(snap.segments, snap.live)),
            "segments": [
                {
                    "name": seg.name,
                    "rows": seg.rows,
                    "deleted": self.store.deleted_rows(seg),
                    "ann": (seg.record.get("ann") or {}).get("kind", "flat"),
                    "codes": seg.quantization,  # int8 / binary codes of the flat first stage, or None
                }
                for seg in self.segments
            ],
            "bytes": {**sizes, "total": sum(sizes.values())},
            "bytes_per_stored_row": {k: round(v / rows, 1) for k, v in sizes.items()} if rows else {},
        }


@functools.cache
def _warm_up_kernels() -> None:
    """Compile (or load from numba's on-disk cache, ≈0.5 s) the sparse and MaxSim kernels on a background
    thread, once per process, so that the first query does not pay for it."""

    def warm() -> None:
        sparse_scorer.warm_up()
        scoring.warm_up()

    threading.Thread(target=warm, name="trivec-warm-up", daemon=True).start()


@functools.cache
def _warm_up_dense_codes() -> None:
    """The same for the kernels that score dense codes (an index with `dense_quantization`)."""
    threading.Thread(target=dense_codes.warm_up, name="trivec-warm-up-dense", daemon=True).start()


__all__ = ["EmbeddedIndex", "NotAnIndexError", "check_target"]


def _residual_info(codec: ColbertCodec, staged: int) -> dict[str, int | None] | None:
    """Residual codes' bits and centroids (None until fitted), the live float16 token rows staged meanwhile
    (`staged`) and the stored tokens the fit waits for; None for other codes."""
    bits = RESIDUAL_BITS.get(codec.dtype)
    if bits is None:
        return None
    return {
        "bits": bits,
        "centroids": codec.residual.count if codec.residual is not None else None,
        "staged_tokens": staged,
        "fit_at_tokens": colbert.FIT_SAMPLE,  # read when asked: the threshold `fills_fit_sample` uses
    }
