"""`POST /search` over a `trivec.retrieval` index.

The queries are encoded through the dynamic batcher (so they share batches with other requests), then the
index is searched with those vectors (`Index.search_vectors`) in worker threads — several at once: a search
reads one snapshot of the index, whatever a reload does meanwhile — each on one core (its OpenMP work does
not fan out: `trivec.compiled.one_thread`). Results equal `Index.search` on the same texts.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from trivec.inference import Embedder, EncodeResult
from trivec.retrieval import CorruptIndexError, EmbeddedIndex, Index, SearchPlan, plan_search
from trivec.retrieval.base import unit
from trivec.serving.schemas import SearchRequest

logger = logging.getLogger("trivec.serving")


class IndexSearcher:
    """An opened index searched with query vectors from the server's own model."""

    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder
        self._lock = threading.Lock()  # guards info() and close(); searches read a snapshot and take none

    @classmethod
    def open(cls, path: str | os.PathLike[str], embedder: Embedder, verify: bool = False) -> IndexSearcher:
        """Open the index at `path` for `embedder` (a model other than the index's is refused). `verify`:
        check every file of an embedded index first (`EmbeddedIndex.verify`), so that a server never starts
        on a damaged index (a `CorruptIndexError` naming the first damaged file)."""
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
        return cls(index, embedder)

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
            self.embedder.fusion_weights,
        )

    def search(self, encoded: EncodeResult, req: SearchRequest) -> list[list[dict[str, Any]]]:
        """Hits for already-encoded queries (the server's model, with `query_prompt()` before each)."""
        encoded.dense = unit(encoded.dense, self.embedder)
        # no lock: a search reads the snapshot current when it starts (`trivec.retrieval.snapshot`), so the
        # searches of concurrent requests run side by side while the encoder thread batches the next queries
        hits = self.index.search_vectors(
            encoded,
            req.top_k,
            mode=req.mode,
            weights=req.weights,
            fusion=req.fusion,
            candidates=req.candidates,
        )
        return [[hit.to_dict() for hit in per_query] for per_query in hits]

    def close(self) -> None:
        with self._lock:
            self.index.close()
