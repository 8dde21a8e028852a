"""How an index's settings become a Qdrant collection's configuration (`qdrant_client.models`).

Per point the collection holds a `dense` vector (dot product on unit vectors; an HNSW graph with the index's
`hnsw_m` / `hnsw_ef_construction`), a `sparse` vector, and a `colbert` multivector compared by MaxSim, with no
graph (it only re-ranks). Storage:

- `dense_quantization` → Qdrant's quantisation of `dense`, codes kept in RAM (`always_ram`): int8 → scalar
  int8 (one range over the whole collection, where the embedded index has one per dimension), binary →
  binary with an 8-bit query (asymmetric, like the embedded index's float query against ±1).
- `colbert_dtype` → the multivector's datatype: float32 as it is; any other code as float16 (Qdrant has no
  signed int8 / int4 / binary multivectors). A reduced `colbert_dim` is the embedded index's alone.
- `qdrant_on_disk` → where each part lives: `on_disk` of the dense and ColBERT vectors (originals read
  from disk through the page cache; quantised codes stay in RAM), of the dense graph, of the sparse index,
  and `on_disk_payload` (the chunks' text). Not given: Qdrant's defaults.
- `qdrant_shards` / `qdrant_replicas` → the collection's `shard_number` / `replication_factor` (a cluster;
  one node ignores neither, but gains nothing).
"""

from __future__ import annotations

from typing import Any

from trivec.retrieval.identity import ModelIdentity
from trivec.retrieval.settings import IndexSettings


def quantization_config(settings: IndexSettings) -> Any:
    """Qdrant's quantisation of the dense vectors for `dense_quantization` (None: none), codes kept in RAM."""
    from qdrant_client import models

    if settings.dense_quantization == "int8":
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        )
    if settings.dense_quantization == "binary":
        return models.BinaryQuantization(
            binary=models.BinaryQuantizationConfig(
                always_ram=True, query_encoding=models.BinaryQuantizationQueryEncoding.SCALAR8BITS
            )
        )
    return None


def dense_search_params(settings: IndexSettings) -> Any:
    """Search parameters of a dense first stage over quantised vectors: the best `limit × oversampling` by
    their codes, re-scored from the original vectors (None without quantisation)."""
    from qdrant_client import models

    if settings.dense_quantization == "none":
        return None
    return models.SearchParams(
        quantization=models.QuantizationSearchParams(rescore=True, oversampling=settings.oversampling)
    )


def collection_options(settings: IndexSettings, identity: ModelIdentity, modes: list[str]) -> dict[str, Any]:
    """The keyword arguments of `QdrantClient.create_collection` for an index of `modes` (see the module doc)."""
    from qdrant_client import models

    parts = settings.qdrant_on_disk

    def on_disk(part: str) -> bool | None:  # None: Qdrant's default for the part
        return None if parts is None else part in parts

    graph = models.HnswConfigDiff(
        m=settings.hnsw_m, ef_construct=settings.hnsw_ef_construction, on_disk=on_disk("hnsw")
    )
    vectors: dict[str, Any] = {
        "dense": models.VectorParams(
            size=identity.dense_dim,
            distance=models.Distance.DOT,
            quantization_config=quantization_config(settings),
            on_disk=on_disk("dense"),
            hnsw_config=graph,
        )
    }
    if "colbert" in modes:
        vectors["colbert"] = models.VectorParams(
            size=int(identity.colbert_dim or 0),
            distance=models.Distance.DOT,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
            hnsw_config=models.HnswConfigDiff(m=0),  # re-ranking only: no graph over token vectors
            datatype=None if settings.colbert_dtype == "float32" else models.Datatype.FLOAT16,
            on_disk=on_disk("colbert"),
        )
    sparse_index = models.SparseIndexParams(on_disk=on_disk("sparse"))
    return {
        "vectors_config": vectors,
        "sparse_vectors_config": {"sparse": models.SparseVectorParams(index=sparse_index)}
        if "sparse" in modes
        else None,
        "on_disk_payload": on_disk("payload"),
        "shard_number": settings.qdrant_shards,
        "replication_factor": settings.qdrant_replicas,
    }
