"""The Qdrant backend: the same index API on one Qdrant collection (server, cluster, or qdrant-client local mode).

The collection holds per point (= chunk) a `dense` vector (dot product on unit vectors), a `sparse` vector
(lexical weights; Qdrant's sparse dot product is the lexical matching score), a `colbert` multivector with
the MaxSim comparator, and the chunk as payload. A hybrid search is one Qdrant query — prefetch dense top-N
and sparse top-N, re-rank their union by the ColBERT multivector — plus one batch that scores the same
candidates by dense and sparse; fusion then runs here with the embedded index's code, so both backends rank
alike. Qdrant's MaxSim sums over query tokens; trivec's averages, so ColBERT scores are divided by the query
length. The index directory keeps `qdrant.json` (where the collection is, the model, the settings) and, in
local mode, the Qdrant files.

How the settings map to the collection's configuration — quantisation, multivector datatype, what is kept
on disk, shards and replicas — is `trivec.retrieval.qdrant_collection`. With `dense_quantization`, dense
searches ask Qdrant to re-score from the original vectors (`rescore=True`, `oversampling` as the settings
say); the dense scores of candidates ignore the codes, so every score returned is exact. qdrant-client's
local mode searches by brute force and has no quantisation: it records the configuration, searches exactly,
and is sent no quantisation search parameters (it would warn on each).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trivec.errors import InputError
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.sparse import SparseVector
from trivec.io import atomic_writer
from trivec.retrieval.base import BaseIndex, already_indexed, not_indexed
from trivec.retrieval.corpus import CHUNK_SEPARATOR, Chunk
from trivec.retrieval.identity import ModelIdentity, identify
from trivec.retrieval.manifest import NotAnIndexError
from trivec.retrieval.plan import SearchPlan
from trivec.retrieval.pooling import pool_tokens
from trivec.retrieval.qdrant_collection import collection_options, dense_search_params
from trivec.retrieval.searcher import Hit, QueryScorer, Ranked, search
from trivec.retrieval.settings import IndexSettings

CONFIG = "qdrant.json"
LOCAL_DIR = "qdrant"
NAMESPACE = uuid.UUID("6f1c2a4e-9d3b-4f51-8a07-3c2e5b9d7f10")
UPSERT_BATCH = 256


def point_id(chunk_id: str) -> str:
    """Qdrant point ids are integers or UUIDs: a stable UUID5 of the chunk id."""
    return str(uuid.uuid5(NAMESPACE, chunk_id))


def _client(url: str | None, path: Path, api_key: str | None) -> Any:
    from qdrant_client import QdrantClient

    if url is None:
        return QdrantClient(path=str(path / LOCAL_DIR))
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    return QdrantClient(url=url, api_key=api_key)


class QdrantIndex(BaseIndex):
    """An index on a Qdrant collection (`url=None`: qdrant-client local mode in the index directory)."""

    def __init__(
        self, directory: Path, config: dict[str, Any], client: Any, embedder: Embedder | None = None
    ) -> None:
        super().__init__(embedder)
        self.directory = directory
        self.config = config
        self.client = client
        self.collection = config["collection"]
        self.identity = ModelIdentity.from_dict(config["model"])
        self.settings = IndexSettings.from_dict(config["settings"])
        self.local = config.get("url") in (None, ":memory:")  # qdrant-client local mode: exact search only
        self.location = (
            f"{directory} (Qdrant collection {self.collection!r} at {config.get('url') or 'local mode'})"
        )

    # ------------------------------------------------------------------ opening
    @classmethod
    def new(
        cls,
        directory: Path,
        embedder: Embedder,
        settings: IndexSettings,
        overwrite: bool = False,
        url: str | None = None,
        collection: str | None = None,
        api_key: str | None = None,
    ) -> QdrantIndex:
        from qdrant_client import models

        if directory.exists() and any(directory.iterdir()):
            if not (overwrite and (directory / CONFIG).is_file()):
                raise InputError(
                    f"{directory} is not empty (an existing Qdrant index is replaced with overwrite=True)",
                    cli=f"{directory} is not empty (an existing Qdrant index is replaced with --overwrite)",
                )
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        identity = identify(embedder)
        name = collection or f"trivec-{uuid.uuid4().hex[:8]}"
        client = _client(url, directory, api_key or os.environ.get("QDRANT_API_KEY"))
        if client.collection_exists(name):
            if not overwrite:
                raise InputError(
                    f"Qdrant collection {name!r} exists already (overwrite=True replaces it)",
                    cli=f"Qdrant collection {name!r} exists already (--overwrite replaces it)",
                )
            client.delete_collection(name)
        config = {
            "format": "trivec-qdrant",
            "version": 1,
            "url": url,
            "collection": name,
            "model": identity.to_dict(),
            "settings": settings.to_dict(),
        }
        index = cls(directory, config, client, embedder)
        if "colbert" in index.modes and settings.colbert_dim is not None:
            raise InputError("reduced ColBERT dimensions are an embedded-index option")
        client.create_collection(name, **collection_options(settings, identity, index.modes))
        if url not in (None, ":memory:"):  # local mode has no payload indexes
            client.create_payload_index(name, "doc_id", models.PayloadSchemaType.KEYWORD)
        with atomic_writer(directory / CONFIG) as handle:
            json.dump(config, handle, indent=1)
        return index

    @classmethod
    def load(
        cls,
        directory: Path,
        model: str | os.PathLike[str] | Embedder | None = None,
        api_key: str | None = None,
    ) -> QdrantIndex:
        path = directory / CONFIG
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise NotAnIndexError(f"{path} cannot be read ({exc})") from exc
        if not isinstance(config, dict) or config.get("format") != "trivec-qdrant":
            raise NotAnIndexError(f"{path} is not a trivec Qdrant index configuration")
        client = _client(config.get("url"), directory, api_key or os.environ.get("QDRANT_API_KEY"))
        if not client.collection_exists(config["collection"]):
            raise NotAnIndexError(
                f"Qdrant collection {config['collection']!r} named by {path} does not exist"
            )
        index = cls(directory, config, client)
        index._adopt_model(model)
        return index

    # ------------------------------------------------------------------ helpers
    def _doc_filter(self, doc_ids: Sequence[str]) -> Any:
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))]
        )

    def _present(self, doc_ids: Sequence[str]) -> set[str]:
        """The ids among `doc_ids` that are indexed: a point lookup of each document's first chunk (its id
        is the document id, or `id#0` when the document was split), never a filtered scan."""
        unique = list(dict.fromkeys(doc_ids))
        found: set[str] = set()
        for start in range(0, len(unique), 1000):
            part = unique[start : start + 1000]
            keys = [point_id(d) for d in part] + [point_id(f"{d}{CHUNK_SEPARATOR}0") for d in part]
            for record in self.client.retrieve(
                self.collection, keys, with_payload=["doc_id"], with_vectors=False
            ):
                found.add(record.payload["doc_id"])
        return found & set(unique)

    def _points(self, chunks: Sequence[Chunk], encoded: EncodeResult) -> list[Any]:
        from qdrant_client import models

        assert encoded.dense is not None
        points = []
        for i, chunk in enumerate(chunks):
            vector: dict[str, Any] = {"dense": encoded.dense[i].astype(np.float32).tolist()}
            if "sparse" in self.modes and encoded.sparse is not None:
                sv = encoded.sparse[i]
                vector["sparse"] = models.SparseVector(indices=sv.indices.tolist(), values=sv.values.tolist())
            if "colbert" in self.modes and encoded.colbert is not None:
                pooled = pool_tokens(
                    encoded.colbert[i], self.settings.colbert_pool_factor, self.settings.colbert_pool_floor
                )
                vector["colbert"] = pooled.tolist()
            payload = {
                "chunk_id": chunk.id,
                "doc_id": chunk.doc_id,
                "title": chunk.title,
                "text": chunk.text,
                "metadata": chunk.metadata,
                "position": chunk.position,
            }
            points.append(models.PointStruct(id=point_id(chunk.id), vector=vector, payload=payload))
        return points

    # ------------------------------------------------------------------ writing
    def _add_chunks(
        self, chunks: Sequence[Chunk], batches: Iterable[tuple[list[Chunk], EncodeResult]] | None
    ) -> int:
        self._check_absent(chunks)
        stored = 0
        for batch, encoded in batches if batches is not None else self._encoded(chunks):
            if batches is not None:
                self._check_absent(batch)
            self._mark_chunked(batch)
            points = self._points(batch, encoded)
            for start in range(0, len(points), UPSERT_BATCH):
                self.client.upsert(self.collection, points[start : start + UPSERT_BATCH], wait=True)
            stored += len(batch)
            del encoded, points  # sent: not held while the next batch is encoded
        return stored

    def _check_absent(self, chunks: Sequence[Chunk]) -> None:
        clash = sorted(self._present([c.doc_id for c in chunks])) if chunks else []
        if clash:
            raise already_indexed(clash)

    def _replace(self, doc_ids: Sequence[str], chunks: Sequence[Chunk], upsert: bool) -> int:
        present = self._present(doc_ids)
        missing = [d for d in doc_ids if d not in present]
        if missing and not upsert:
            raise not_indexed(missing, "update")
        if present:
            self._delete_present(sorted(present))
        return self._add_chunks(chunks, None)

    def _delete_present(self, doc_ids: Sequence[str]) -> int:
        from qdrant_client import models

        removed = 0
        for start in range(0, len(doc_ids), 1000):
            flt = self._doc_filter(doc_ids[start : start + 1000])
            removed += self.client.count(self.collection, count_filter=flt, exact=True).count
            self.client.delete(self.collection, points_selector=models.FilterSelector(filter=flt), wait=True)
        return removed

    def delete(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            raise InputError("no document ids to delete")
        present = self._present(ids)
        missing = [d for d in dict.fromkeys(ids) if d not in present]
        if missing and not missing_ok:
            raise not_indexed(missing, "delete")
        return self._delete_present(sorted(present)) if present else 0

    # ------------------------------------------------------------------ search
    def search_encoded(self, encoded: EncodeResult, plan: SearchPlan) -> list[list[Hit]]:
        n = encoded.dense.shape[0] if encoded.dense is not None else len(encoded.sparse or [])
        return search((CollectionQuery(self, encoded, q) for q in range(n)), plan, self._chunked())

    def _chunked(self) -> bool:
        return bool(self.config.get("chunked"))

    def _mark_chunked(self, chunks: Sequence[Chunk]) -> None:
        """Record (in qdrant.json) that documents were split, so searches group hits by document."""
        if self.config.get("chunked") or all(c.id == c.doc_id for c in chunks):
            return
        self.config["chunked"] = True
        with atomic_writer(self.directory / CONFIG) as handle:
            json.dump(self.config, handle, indent=1)

    # ------------------------------------------------------------------ reading
    def get(self, doc_id: str) -> list[Chunk]:
        points, _ = self.client.scroll(
            self.collection, scroll_filter=self._doc_filter([doc_id]), limit=100_000, with_payload=True
        )
        if not points:
            raise InputError(f"unknown document id {doc_id!r}")
        chunks = [
            Chunk(
                p.payload["chunk_id"],
                p.payload["doc_id"],
                p.payload["text"],
                p.payload.get("title"),
                p.payload.get("metadata") or {},
                int(p.payload.get("position", 0)),
            )
            for p in points
        ]
        return sorted(chunks, key=lambda c: c.position)

    def doc_ids(self) -> list[str]:
        out: dict[str, None] = {}
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=1000, offset=offset, with_payload=["doc_id"], with_vectors=False
            )
            for p in points:
                out.setdefault(p.payload["doc_id"], None)
            if offset is None:
                return list(out)

    def __len__(self) -> int:
        from qdrant_client import models

        flt = models.Filter(must=[models.FieldCondition(key="position", match=models.MatchValue(value=0))])
        return int(self.client.count(self.collection, count_filter=flt, exact=True).count)

    def info(self) -> dict[str, Any]:
        return {
            "backend": "qdrant",
            "path": str(self.directory),
            "url": self.config.get("url") or "local mode",
            "collection": self.collection,
            "documents": len(self),
            "chunks": int(self.client.count(self.collection, exact=True).count),
            "model": self.identity.to_dict(),
            "modes": self.modes,
            "settings": self.settings.to_dict(),
        }

    def save(self) -> None:
        """Qdrant persists every acknowledged write (`wait=True`); nothing is pending here."""

    def close(self) -> None:
        self.client.close()


class CollectionQuery(QueryScorer):
    """One query against the collection. Keys are positions in `points`, the points the query's requests
    returned (with their payloads)."""

    def __init__(self, index: QdrantIndex, encoded: EncodeResult, q: int) -> None:
        from qdrant_client import models

        self.client, self.collection = index.client, index.collection
        quantized = index.settings.dense_quantization != "none" and not index.local
        self.dense_params = dense_search_params(index.settings) if quantized else None
        # the candidates' dense scores from the original vectors, whatever found them
        self.exact_params = (
            models.SearchParams(quantization=models.QuantizationSearchParams(ignore=True))
            if quantized
            else None
        )
        self.points: list[Any] = []
        self.dense = encoded.dense[q].astype(np.float32).tolist() if encoded.dense is not None else None
        self.sparse = None
        if encoded.sparse is not None:
            sv: SparseVector = encoded.sparse[q]
            self.sparse = models.SparseVector(indices=sv.indices.tolist(), values=sv.values.tolist())
        self.colbert = (
            np.asarray(encoded.colbert[q], dtype=np.float32) if encoded.colbert is not None else None
        )

    def _keep(self, points: list[Any]) -> np.ndarray:
        self.points = points
        return np.arange(len(points), dtype=np.int64)

    def top(self, mode: str, k: int) -> Ranked:
        query = self.dense if mode == "dense" else self.sparse
        params = self.dense_params if mode == "dense" else None
        result = self.client.query_points(
            self.collection, query=query, using=mode, limit=k, with_payload=True, search_params=params
        ).points
        if mode == "sparse":
            result = [p for p in result if p.score > 0]
        return self._keep(result), np.array([p.score for p in result], dtype=np.float64)

    def candidates(self, plan: SearchPlan, depth: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One request: the dense and sparse top `depth` (prefetched) re-ranked by the ColBERT multivector
        (Qdrant's MaxSim sums over query tokens; trivec's averages, hence the division), or merged by RRF
        when ColBERT is not scored."""
        from qdrant_client import models

        prefetch = [models.Prefetch(query=self.dense, using="dense", limit=depth, params=self.dense_params)]
        if "sparse" in plan.first_stage and self.sparse is not None:
            prefetch.append(models.Prefetch(query=self.sparse, using="sparse", limit=depth))
        by_colbert = "colbert" in plan.score_modes and self.colbert is not None
        found = self.client.query_points(
            self.collection,
            prefetch=prefetch,
            query=self.colbert.tolist()
            if by_colbert and self.colbert is not None
            else models.FusionQuery(fusion=models.Fusion.RRF),
            using="colbert" if by_colbert else None,
            limit=depth * len(prefetch),
            with_payload=True,
        ).points
        known: dict[str, np.ndarray] = {}
        if by_colbert and self.colbert is not None:
            scores = np.array([p.score for p in found], dtype=np.float64)
            known["colbert"] = scores / max(self.colbert.shape[0], 1)
        return self._keep(found), known

    def scores(self, modes: Iterable[str], keys: np.ndarray) -> dict[str, np.ndarray]:
        """Dense and sparse scores of the candidates, one batch of requests filtered to their ids."""
        from qdrant_client import models

        ids = [self.points[i].id for i in keys.tolist()]
        requests = []
        for mode in modes:
            vector = self.dense if mode == "dense" else self.sparse if mode == "sparse" else None
            if vector is None:
                continue
            requests.append(
                (
                    mode,
                    models.QueryRequest(
                        query=vector,
                        using=mode,
                        filter=models.Filter(must=[models.HasIdCondition(has_id=ids)]),
                        limit=len(ids),
                        params=self.exact_params if mode == "dense" else None,
                    ),
                )
            )
        out: dict[str, np.ndarray] = {}
        if requests:
            responses = self.client.query_batch_points(self.collection, [r for _, r in requests])
            for (mode, _), response in zip(requests, responses, strict=True):
                by_id = {p.id: p.score for p in response.points}
                out[mode] = np.array([by_id.get(i, 0.0) for i in ids], dtype=np.float64)
        return out

    def doc_id(self, where: Any) -> str:
        return str((self.points[where].payload or {}).get("doc_id", ""))

    def hit(self, where: Any, score: float, scores: dict[str, float], doc_id: str | None) -> Hit:
        point = self.points[where]
        payload = point.payload or {}
        return Hit(
            id=payload.get("chunk_id", str(point.id)),
            doc_id=payload.get("doc_id", "") if doc_id is None else doc_id,
            score=score,
            scores=scores,
            text=payload.get("text", ""),
            title=payload.get("title"),
            metadata=payload.get("metadata") or {},
        )
