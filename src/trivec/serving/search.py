"""`POST /search` over a `trivec.retrieval` index.

The queries are encoded through the dynamic batcher (so they share batches with other requests), then
searched by `search_threads()` search threads, one per core: a thread coming free takes the requests waiting
that ask for the same search (top k, mode, weights, fusion, candidates) — its share of them when other
search threads wait too — and searches them as one batch of queries (`Index.search_vectors`: one snapshot,
one dense product for all of them, one pass of the per-search work). A search re-ranks on one core
(`trivec.compiled.one_thread`), so a single search thread would cap the server at one core's worth of
searches however many clients wait; the threads take batches independently, so none waits for another's.
The encoder thread encodes the next queries meanwhile. Results equal `Index.search` on the same texts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from trivec.inference import Embedder, EncodeResult
from trivec.retrieval import CorruptIndexError, EmbeddedIndex, Index, SearchPlan, plan_search
from trivec.retrieval.base import unit
from trivec.serving.config import ServingLimits
from trivec.serving.schemas import SearchRequest
from trivec.serving.worker import MergingWorker, QueueFullError

logger = logging.getLogger("trivec.serving")
MAX_MERGED_QUERIES = 64  # queries searched together at most: bounds one batch's latency and memory
MAX_SEARCH_THREADS = 4


def search_threads() -> int:
    """Search threads of a server: one per core this process may run on, at most `MAX_SEARCH_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_SEARCH_THREADS, cores))


@dataclass(eq=False)
class _Search:
    encoded: EncodeResult
    request: SearchRequest
    key: str
    future: Future[list[list[dict[str, Any]]]]


def search_key(req: SearchRequest) -> str:
    """Requests with equal keys ask for the same search and may be searched as one batch."""
    fields = (req.top_k, req.mode, req.weights, req.fusion, req.candidates, req.language)
    return json.dumps(fields, sort_keys=True, default=str)


class IndexSearcher(MergingWorker[_Search]):
    """An opened index searched with query vectors from the server's own model, on its search thread."""

    thread_name = "trivec-search"
    closed_message = "the server is shutting down and takes no new searches"

    def __init__(
        self, index: Index, embedder: Embedder, threads: int | None = None, queue_size: int | None = None
    ) -> None:
        super().__init__(search_threads() if threads is None else threads)
        self.index = index
        self.embedder = embedder
        # queries waiting for a search thread, at most (the server's --queue-size): searching slower than
        # the encoder encodes (ColBERT over a large index) answers 503 instead of piling up requests
        self.queue_size = ServingLimits.queue_size if queue_size is None else queue_size
        self._queued_queries = 0
        self._lock = threading.Lock()  # guards info() and close(); searches read a snapshot and take none

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        embedder: Embedder,
        verify: bool = False,
        threads: int | None = None,
        queue_size: int | None = None,
    ) -> IndexSearcher:
        """Open the index at `path` for `embedder` (a model other than the index's is refused). `verify`:
        check every file of an embedded index first (`EmbeddedIndex.verify`), so that a server never starts
        on a damaged index (a `CorruptIndexError` naming the first damaged file). `threads`: search threads
        (default `search_threads()`); `queue_size`: queries waiting for them, at most."""
        index = Index.open(path, model=embedder)
        if verify and isinstance(index, EmbeddedIndex):
            report = index.verify()
            if report["problems"]:
                index.close()
                raise CorruptIndexError(
                    f"{path} is damaged ({len(report['problems'])} problem(s)); the first: {report['problems'][0]}"
                )
            logger.info(
                "index %s verified: %d files, %s bytes in %.2f s",
                path,
                report["files"],
                f"{report['bytes']:,}",
                report["seconds"],
            )
        return cls(index, embedder, threads, queue_size)

    @staticmethod
    def recorded_model(path: str | os.PathLike[str]) -> str:
        """The model name an index records (what `trivec serve --index DIR` loads without `--model`)."""
        with Index.open(path) as index:
            return index.identity.name

    def describe(self) -> dict[str, Any]:
        """What `/health` says about the index."""
        with self._lock:
            info = self.index.info()
        return {
            "backend": info.get("backend"),
            "path": info.get("path", getattr(self.index, "location", None)),
            "documents": info.get("documents"),
            "chunks": info.get("chunks"),
            "modes": self.index.modes,
            "prompts": info.get("settings", {}).get("prompts"),
        }

    def query_prompt(self, override: str | None = None) -> str:
        """The text put before queries: `override`, else the query prompt the index records."""
        return self.index.prompt("query", override)

    def plan(self, req: SearchRequest) -> SearchPlan:
        """Check the request's mode, weights and fusion against the index (InputError → 422)."""
        return plan_search(
            req.mode,
            self.index.modes,
            req.weights,
            req.fusion,
            req.top_k,
            req.candidates,
            self.embedder.fusion_defaults.for_language(req.language),
        )

    def search(self, encoded: EncodeResult, req: SearchRequest) -> list[list[dict[str, Any]]]:
        """Hits for already-encoded queries (the server's model, with `query_prompt()` before each)."""
        encoded.dense = unit(encoded.dense, self.embedder)
        # no lock: a search reads the snapshot current when it starts (`trivec.retrieval.snapshot`), whatever
        # a reload does meanwhile
        hits = self.index.search_vectors(
            encoded,
            req.top_k,
            mode=req.mode,
            weights=req.weights,
            fusion=req.fusion,
            candidates=req.candidates,
            language=req.language,
        )
        return [[hit.to_dict() for hit in per_query] for per_query in hits]

    def submit(self, encoded: EncodeResult, req: SearchRequest) -> Future[list[list[dict[str, Any]]]]:
        """Queue a search of already-encoded queries for the search thread (started on first use); the
        future gives one list of hits per query."""
        job = _Search(encoded, req, search_key(req), Future())
        self._submit(job)
        return job.future

    def _admit(self, job: _Search) -> None:
        """Queue the search if its queries fit in the queue; `QueueFullError` if not."""
        queries = len(job.encoded)
        if self._queued_queries + queries > self.queue_size:
            raise QueueFullError(
                f"the search queue is full ({self._queued_queries} of {self.queue_size} queries waiting; "
                f"this request has {queries}); retry shortly"
            )
        self.start()  # the search thread starts with the first search
        super()._admit(job)
        self._queued_queries += queries

    def _take_batch(self) -> list[_Search]:
        """The oldest search and the waiting ones that ask for the same, up to `MAX_MERGED_QUERIES` — and
        up to this thread's share of them when other search threads wait for work."""
        first = self._pending.popleft()
        same = 1 + sum(1 for job in self._pending if job.key == first.key)
        share = -(-same // (1 + self.idle_threads))  # requests this thread takes, rounded up
        group, queries = [first], len(first.encoded)
        others: deque[_Search] = deque()
        while self._pending:
            job = self._pending.popleft()
            if (
                job.key == first.key
                and len(group) < share
                and queries + len(job.encoded) <= MAX_MERGED_QUERIES
            ):
                group.append(job)
                queries += len(job.encoded)
            else:
                others.append(job)
        self._pending.extendleft(reversed(others))
        self._queued_queries -= queries
        return group

    def _process(self, batch: list[_Search]) -> None:
        """One `search` of the batch's queries; each request gets its own hits (an error reaches them all)."""
        hits = self.search(EncodeResult.concat([job.encoded for job in batch]), batch[0].request)
        start = 0
        for job in batch:
            job.future.set_result(hits[start : start + len(job.encoded)])
            start += len(job.encoded)

    def close(self, timeout: float | None = None) -> bool:
        """Finish the queued searches, stop the search thread, close the index; False (the index left open)
        when the thread is still searching after `timeout`."""
        if not super().close(timeout):
            return False
        with self._lock:
            self.index.close()
        return True
