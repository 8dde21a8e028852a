"""Searching the embedded index's segments: the first-stage lists and exact scores the searcher asks for.

`SegmentSearch` reads one snapshot (one commit): dense top rows per segment (exact, through a segment's
HNSW / IVF graph, or by its int8 / binary codes and then re-scored exactly) merged across segments, lexical
matching scores of every row (the inverted index, accumulated once per query and kept for re-scoring),
dense and ColBERT scores of given rows. Keys are global row numbers over the snapshot's segments. What to do
with them is `searcher.py`'s.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from trivec.compiled import one_thread, rows_times
from trivec.inference.encoder import EncodeResult
from trivec.inference.scoring import maxsim_chunked
from trivec.inference.sparse import SparseVector
from trivec.retrieval.colbert import ColbertCodec
from trivec.retrieval.corpus import Chunk
from trivec.retrieval.dense_codes import rescored_rows
from trivec.retrieval.fusion import merge_top_k, top_k
from trivec.retrieval.plan import SearchPlan
from trivec.retrieval.searcher import Hit, QueryScorer, Ranked, union
from trivec.retrieval.segment import Segment
from trivec.retrieval.settings import IndexSettings
from trivec.retrieval.snapshot import Snapshot
from trivec.retrieval.sparse_scorer import SparseScorer, SparseScores


class SegmentSearch:
    """The scorers of a batch of queries over one snapshot (built per search)."""

    def __init__(
        self, snap: Snapshot, codec: ColbertCodec, settings: IndexSettings, sparse: SparseScorer
    ) -> None:
        self.snap, self.codec, self.settings, self.sparse = snap, codec, settings, sparse

    def scorers(
        self, encoded: EncodeResult, plan: SearchPlan, depth: int
    ) -> Generator[SegmentQuery, None, None]:
        """One scorer per query, each valid until the next is taken (it holds the query's lexical scores).
        The dense first stage runs for all queries at once, on a worker beside the first query's sparse
        stage when both are needed."""
        queries = count_queries(encoded)
        use_sparse = bool(encoded.sparse) and ("sparse" in plan.score_modes or "sparse" in plan.first_stage)
        dense_job: Future[list[Ranked]] | None = None
        dense_top: list[Ranked] | None = None
        if "dense" in plan.first_stage:
            dense_queries = np.asarray(encoded.dense, dtype=np.float32)
            # the graph walk (faiss / BLAS, GIL released) runs on a worker beside the sparse stage
            if use_sparse and _CORES > 1:
                dense_job = _first_stage_pool().submit(self._dense_top, dense_queries, depth)
            else:
                dense_top = self._dense_top(dense_queries, depth)
        for q in range(queries):
            with (
                self._sparse_accumulate(encoded.sparse[q])
                if use_sparse and encoded.sparse
                else contextlib.nullcontext(None)
            ) as accum:
                if dense_job is not None:
                    dense_top, dense_job = dense_job.result(), None
                yield SegmentQuery(self, encoded, q, dense_top, accum)

    def _dense_top(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (global rows, scores) of the top `k` live rows, best first (the graph walk on this
        thread alone: see `trivec.compiled.one_thread`)."""
        with one_thread():
            return self._dense_top_here(queries, k)

    def _dense_top_here(self, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        per_query: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(queries.shape[0])]
        for i, seg in enumerate(self.snap.segments):
            assert seg.dense is not None
            live = self.snap.live[i]
            ann = seg.ann()
            if ann is not None:
                faiss = importlib.import_module("faiss")

                kk = min(k, seg.rows)
                if seg.record["ann"]["kind"] == "hnsw":
                    params: Any = faiss.SearchParametersHNSW(efSearch=max(self.settings.hnsw_ef_search, kk))
                else:
                    params = faiss.SearchParametersIVF(nprobe=self.settings.ivf_nprobe)
                selector = self.snap.selector(i)
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
                    per_query[q].append((values.astype(np.float64), found + self.snap.bases[i]))
                continue
            if seg.quantization is not None:
                for q, found in enumerate(self._rescored_top(i, queries, k)):
                    per_query[q].append(found)
                continue
            all_scores = rows_times(seg.dense_all(), queries)  # [n, Q]
            if live is not None:
                all_scores[~live] = -np.inf
            for q in range(queries.shape[0]):
                column = all_scores[:, q]
                best = top_k(column, k)
                best = best[np.isfinite(column[best])]
                per_query[q].append((column[best].astype(np.float64), best + self.snap.bases[i]))
        out = []
        for parts in per_query:
            values, rows = merge_top_k(parts, k)
            out.append((rows.astype(np.int64), values))
        return out

    def _rescored_top(self, i: int, queries: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (exact scores, global rows) of segment `i`'s top `k` live rows, best first, found among
        the ⌈k × oversampling⌉ rows its dense codes rank highest and re-scored from the float32 vectors."""
        seg, live, base = self.snap.segments[i], self.snap.live[i], self.snap.bases[i]
        approximate = seg.dense_code_scores(queries)  # [n, Q]
        if live is not None:
            approximate[~live] = -np.inf
        keep = rescored_rows(k, self.settings.oversampling)
        out = []
        for q in range(queries.shape[0]):
            column = approximate[:, q]
            found = top_k(column, keep)
            found = found[np.isfinite(column[found])]
            # the scores `dense_scores` gives these rows, bit for bit (einsum over the float32 vectors)
            exact = np.einsum("ij,j->i", seg.dense_rows(found), queries[q])
            best = top_k(exact, k)
            out.append((exact[best].astype(np.float64), found[best] + base))
        return out

    def dense_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=np.float32)
        q = np.asarray(query, dtype=np.float32)
        for s, pick, local in self.snap.by_segment(rows):
            # einsum, not BLAS: a few hundred rows need no thread pool (and waking OpenBLAS's costs more)
            out[pick] = np.einsum("ij,j->i", self.snap.segments[s].dense_rows(local), q)
        return out

    @contextlib.contextmanager
    def _sparse_accumulate(self, query: SparseVector) -> Iterator[list[SparseScores | None]]:
        """Per segment: lexical matching scores of every row (None: the segment has no sparse vectors),
        valid inside the `with` block."""
        with contextlib.ExitStack() as stack:
            yield [
                stack.enter_context(self.sparse.scores(seg.name, seg.postings, query, self.snap.dead[i]))
                if seg.postings is not None
                else None
                for i, seg in enumerate(self.snap.segments)
            ]

    def sparse_top(self, accum: list[SparseScores | None], k: int) -> tuple[np.ndarray, np.ndarray]:
        parts = []
        for i, scores in enumerate(accum):
            if scores is not None:
                rows, values = scores.top(k)
                parts.append((values, rows + self.snap.bases[i]))
        values, rows = merge_top_k(parts, k)
        return rows.astype(np.int64), values

    def sparse_scores(self, accum: list[SparseScores | None], rows: np.ndarray) -> np.ndarray:
        out = np.zeros(rows.shape[0], dtype=np.float64)
        for s, pick, local in self.snap.by_segment(rows):
            scores = accum[s]
            if scores is not None:
                out[pick] = scores.at(local)
        return out

    def colbert_scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim of the candidates: per segment one gather of their token vectors, one decode, one matmul."""
        out = np.zeros(rows.shape[0], dtype=np.float32)
        with one_thread():
            projected = self.codec.project(
                query, matmul=rows_times
            )  # a few hundred candidates: one thread, no OpenMP barrier to wait at
            for s, pick, local in self.snap.by_segment(rows):
                out[pick] = self._colbert_segment(self.snap.segments[s], projected, local)
        return out

    def _colbert_segment(self, segment: Segment, projected: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim of one segment's `rows`, their token rows gathered a chunk at a time (`maxsim_chunked`):
        int8 / int4 / binary rows decoded, their scales applied to the similarities; residual rows decoded;
        fp16 / fp32 as stored (the matmul widens them)."""
        tokens, lengths = segment.colbert_tokens(rows)
        codes, scales = segment.arrays["colbert.codes"], segment.arrays.get("colbert.scale")
        ends = np.cumsum(lengths)
        # a staged segment holds float16 rows waiting for a codebook
        codec = self.codec.staging() if segment.colbert_staged else self.codec
        dim, decode = int(projected.shape[1]), codec.decodes

        def fetch(i: int, j: int) -> tuple[np.ndarray, np.ndarray | None]:
            picked = tokens[ends[i] - lengths[i] : ends[j - 1]]
            if not decode:
                return codes[picked], None
            row_scales = None if scales is None else scales[picked]  # residual codes have none
            return codec.unscaled(codes, dim, rows=picked), row_scales

        return maxsim_chunked(projected, fetch, lengths, dim)


class SegmentQuery(QueryScorer):
    """One query over one snapshot: its dense top rows (found for the batch) and lexical scores."""

    def __init__(
        self,
        search: SegmentSearch,
        encoded: EncodeResult,
        q: int,
        dense_top: list[Ranked] | None,
        accum: list[SparseScores | None] | None,
    ) -> None:
        self.search, self.encoded, self.q = search, encoded, q
        self.dense_top, self.accum = dense_top, accum

    def top(self, mode: str, k: int) -> Ranked:
        if mode == "dense":
            assert self.dense_top is not None
            return self.dense_top[self.q]
        assert self.accum is not None
        return self.search.sparse_top(self.accum, k)

    def candidates(self, plan: SearchPlan, depth: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        lists = []  # the lists the query has vectors for (no sparse vector: no sparse list)
        if self.dense_top is not None:
            lists.append(self.dense_top[self.q][0][:depth])
        if "sparse" in plan.first_stage and self.accum is not None:
            lists.append(self.search.sparse_top(self.accum, depth)[0])
        return union(lists), {}

    def scores(self, modes: Iterable[str], keys: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        search, encoded, q = self.search, self.encoded, self.q
        for mode in modes:
            if mode == "dense" and encoded.dense is not None:
                # every candidate scored the same way, whichever list found it (the first stage's BLAS or
                # faiss scores differ from these in the last bits, and would flip near-ties)
                out["dense"] = search.dense_scores(encoded.dense[q], keys)
            elif mode == "sparse" and self.accum is not None:
                out["sparse"] = search.sparse_scores(self.accum, keys)
            elif mode == "colbert" and encoded.colbert is not None:
                out["colbert"] = search.colbert_scores(encoded.colbert[q], keys)
        return out

    def located(self, keys: np.ndarray) -> list[Any]:
        segs, local = self.search.snap.where(keys)
        return list(zip(segs.tolist(), local.tolist(), strict=True))

    def doc_id(self, where: Any) -> str:
        s, r = where
        return self.search.snap.segments[s].doc_id(r)

    def hit(self, where: Any, score: float, scores: dict[str, float], doc_id: str | None) -> Hit:
        s, r = where
        return StoredHit(self.search.snap.segments[s], r, score, scores, doc_id)


class StoredHit(Hit):
    """A hit of the embedded index: its ids, text, title and metadata are read from the segment when first
    asked for, so a search returns scores without decoding a hundred stored documents nobody looks at."""

    def __init__(
        self, segment: Segment, row: int, score: float, scores: dict[str, float], doc_id: str | None = None
    ) -> None:
        self.score, self.scores = score, scores
        self.fused_by: str | None = None
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
        fields = (self.id, self.doc_id, self.score, self.scores, self.text, self.title, self.metadata)
        return (Hit, (*fields, self.fused_by))

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


_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def _first_stage_pool() -> ThreadPoolExecutor:
    """One worker thread shared by every index in the process: the dense first stage of a hybrid search."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="trivec-dense")


def count_queries(encoded: EncodeResult) -> int:
    if encoded.dense is not None:
        return int(encoded.dense.shape[0])
    return len(encoded.sparse or encoded.colbert or [])
