"""The Qdrant collection's configuration from the index settings: what is kept on disk, the dense graph,
the ColBERT multivector's datatype, shards and replicas (qdrant-client local mode records all but the
payload's place, shards and replicas, which are checked in the arguments of `create_collection`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.retrieval.conftest import MAX_LENGTH, subset
from trivec import Embedder, EncodeResult
from trivec.cli import app
from trivec.errors import InputError
from trivec.retrieval import Document, Index, IndexSettings
from trivec.retrieval.identity import identify
from trivec.retrieval.qdrant import QdrantIndex
from trivec.retrieval.qdrant_collection import collection_options
from trivec.retrieval.settings import QDRANT_ON_DISK

MODES = ["dense", "sparse", "colbert"]


def params(index: Index) -> object:
    assert isinstance(index, QdrantIndex)
    return index.client.get_collection(index.collection).config.params


@pytest.mark.parametrize("parts", [list(QDRANT_ON_DISK), [], ["colbert", "payload"]])
def test_on_disk_parts_reach_the_collection(tmp_path: Path, tiny: Embedder, parts: list[str]) -> None:
    from qdrant_client import models

    index = Index.create(tmp_path / "q", tiny, backend="qdrant", max_length=MAX_LENGTH, qdrant_on_disk=parts)
    config = params(index)
    dense, colbert = config.vectors["dense"], config.vectors["colbert"]  # type: ignore[attr-defined]
    assert dense.on_disk is ("dense" in parts) and dense.hnsw_config.on_disk is ("hnsw" in parts)
    assert (dense.hnsw_config.m, dense.hnsw_config.ef_construct) == (32, 200)  # hnsw_m, hnsw_ef_construction
    assert colbert.on_disk is ("colbert" in parts) and colbert.hnsw_config.m == 0
    assert colbert.multivector_config.comparator == models.MultiVectorComparator.MAX_SIM
    assert colbert.datatype == models.Datatype.FLOAT16  # the default int4 codes: fp16 in Qdrant
    assert config.sparse_vectors["sparse"].index.on_disk is ("sparse" in parts)  # type: ignore[attr-defined]
    options = collection_options(index.settings, index.identity, index.modes)
    assert options["on_disk_payload"] is ("payload" in parts)
    index.close()
    with Index.open(tmp_path / "q") as reopened:
        assert reopened.settings.qdrant_on_disk == parts  # recorded with the index
    shown = CliRunner().invoke(app, ["index", "info", "-x", str(tmp_path / "q")])
    assert f"on disk: {', '.join(parts) or 'nothing'}; shards default, replicas default" in shown.stdout


def test_defaults_leave_qdrant_its_own_and_float32_colbert_stays_float32(
    tmp_path: Path, tiny: Embedder
) -> None:
    index = Index.create(
        tmp_path / "q", tiny, backend="qdrant", max_length=MAX_LENGTH, colbert_dtype="float32"
    )
    config = params(index)
    dense, colbert = config.vectors["dense"], config.vectors["colbert"]  # type: ignore[attr-defined]
    assert dense.on_disk is None and dense.hnsw_config.on_disk is None and colbert.on_disk is None
    assert colbert.datatype is None  # float32, the original vectors
    options = collection_options(index.settings, index.identity, index.modes)
    assert options["on_disk_payload"] is None
    assert options["shard_number"] is None and options["replication_factor"] is None
    index.close()


def test_shards_and_replicas_and_the_graph_settings(tiny: Embedder) -> None:
    settings = IndexSettings(
        qdrant_shards=6, qdrant_replicas=2, hnsw_m=16, hnsw_ef_construction=100
    ).validate()
    options = collection_options(settings, identify(tiny), ["dense"])
    assert options["shard_number"] == 6 and options["replication_factor"] == 2
    assert options["sparse_vectors_config"] is None and set(options["vectors_config"]) == {"dense"}
    graph = options["vectors_config"]["dense"].hnsw_config
    assert (graph.m, graph.ef_construct) == (16, 100)


def test_an_on_disk_collection_ranks_as_the_in_memory_one(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document], small_encoded: EncodeResult
) -> None:
    rows = list(range(40))
    found = []
    for name, parts in (("ram", []), ("disk", list(QDRANT_ON_DISK))):
        index = Index.create(
            tmp_path / name, tiny, backend="qdrant", max_length=MAX_LENGTH, qdrant_on_disk=parts
        )
        index.add_encoded(small_docs[:40], subset(small_encoded, rows))
        hits = index.search_vectors(subset(small_encoded, [3, 17, 30]), top_k=5)
        found.append([[(h.id, round(h.score, 6)) for h in q] for q in hits])
        index.close()
    assert len(found[0][0]) == 5 and found[0] == found[1]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"qdrant_on_disk": ["dense", "gpu"]}, "qdrant_on_disk must name distinct parts"),
        ({"qdrant_on_disk": ["dense", "dense"]}, "qdrant_on_disk must name distinct parts"),
        ({"qdrant_shards": 0}, "qdrant_shards must be a positive integer"),
        ({"qdrant_replicas": 1.5}, "qdrant_replicas must be a positive integer"),
    ],
)
def test_bad_qdrant_settings_are_refused(tmp_path: Path, options: dict[str, object], problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        Index.check_build(tmp_path / "q", backend="qdrant", **options)


def test_the_embedded_index_refuses_qdrant_settings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="qdrant_on_disk applies to the Qdrant backend"):
        Index.check_build(tmp_path / "e", qdrant_on_disk=["dense"])
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a", "text": "x"}\n', encoding="utf-8")
    args = ["index", "build", "-m", str(TINY_M3), "-c", str(corpus), "-x", str(tmp_path / "ix")]
    result = CliRunner().invoke(app, [*args, "--qdrant-shards", "2"])
    assert result.exit_code == 2 and "--qdrant-shards applies to --backend qdrant" in result.stderr
    result = CliRunner().invoke(app, [*args, "--backend", "qdrant", "--qdrant-on-disk", "dense,ram"])
    assert result.exit_code == 2 and "--qdrant-on-disk must name distinct parts" in result.stderr
