"""Index integrity: checksums recorded at commit catch same-size corruption of any file before a wrong result
is returned, `trivec index verify` checks everything, and a server does not start on a damaged index.

Before checksums (issue #20, defect 4): random bytes in dense.f32 gave scores near 1e37, in sparse.ptr every
sparse score silently became 0, in docs.off / colbert.off the errors were raw internals naming no file, and a
server started on such an index failed request by request.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.cli import app
from trivec.retrieval import CorruptIndexError, Document, EmbeddedIndex, Index
from trivec.retrieval.integrity import BLOCK, CHECKSUMS

QUERIES = [
    "boundary layer transition on a flat plate",
    "wing stall at high angles of attack",
    "heat transfer",
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder, small_docs: list[Document]) -> Path:
    """tiny-m3 over 120 Cranfield abstracts: every kind of file — an HNSW graph, int8 ColBERT with scales and
    a projection, a tombstone."""
    path = tmp_path_factory.mktemp("integrity") / "ix"
    with Index.create(
        path, model=tiny, max_length=MAX_LENGTH, dense_index="hnsw", colbert_dtype="int8", colbert_dim=32
    ) as index:
        index.add(small_docs)
        index.delete([small_docs[3].id])
    return path


def segment_dir(index: Path) -> Path:
    return next((index / "segments").iterdir())


def all_files(index: Path) -> list[str]:
    """Every file the manifest vouches for, relative to the index."""
    body = json.loads((index / "MANIFEST.json").read_text(encoding="utf-8"))["body"]
    out = []
    for record in body["segments"]:
        out += [f"segments/{record['name']}/{name}" for name in record["files"]]
        out.append(f"segments/{record['name']}/{CHECKSUMS}")
        if record.get("deleted"):
            out.append(record["deleted"]["file"])
    if body.get("projection"):
        out.append(body["projection"]["file"])
    return sorted(out)


def corrupt(path: Path, seed: int = 0, where: str = "middle") -> None:
    """Overwrite up to 64 bytes with random ones (same size; the bytes surely change)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    n = min(64, len(data))
    start = {"start": 0, "middle": max(0, len(data) // 2 - n // 2), "end": len(data) - n}[where]
    for i in range(start, start + n):
        data[i] = (data[i] + int(rng.integers(1, 256))) % 256
    path.write_bytes(bytes(data))


def test_a_segment_records_checksums_of_every_file(pristine: Path) -> None:
    body = json.loads((pristine / "MANIFEST.json").read_text(encoding="utf-8"))["body"]
    record = body["segments"][0]
    assert record["checksums"]["file"] == CHECKSUMS and record["checksums"]["block"] == BLOCK
    assert {"dense.faiss", "dense.f32", "sparse.ptr", "colbert.codes", "colbert.scale", "docs.off"} <= set(
        record["files"]
    )
    assert record["deleted"]["xxh3"] and body["projection"]["xxh3"]
    done = CliRunner().invoke(app, ["index", "verify", "--index", str(pristine)])
    assert done.exit_code == 0, done.stderr
    assert "intact" in done.stderr


@pytest.fixture()
def damaged(tmp_path: Path, pristine: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "ix")
    return tmp_path / "ix"


def test_verify_names_every_damaged_file(damaged: Path, pristine: Path, tiny: Embedder) -> None:
    for rel in all_files(pristine):
        shutil.rmtree(damaged)
        shutil.copytree(pristine, damaged)
        corrupt(damaged / rel)
        done = CliRunner().invoke(app, ["index", "verify", "--index", str(damaged)])
        assert done.exit_code == 2, (rel, done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("trivec: error:")]
        assert len(errors) == 1 and Path(rel).name in errors[0], (rel, done.stderr)


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_corruption_of_any_file_is_reported_before_a_wrong_result(
    damaged: Path, pristine: Path, tiny: Embedder, where: str
) -> None:
    """Each file damaged in turn: a search either answers exactly as the intact index does (the damaged
    bytes were not needed) or raises `CorruptIndexError` naming the file; once the background check has run,
    every search raises. Opening the index raises at once when the damage is in a file read whole."""
    with Index.open(pristine, model=tiny) as intact:
        want = {
            (q, mode): intact.search(q, top_k=5, mode=mode)[0]
            for q in QUERIES
            for mode in ("hybrid", "sparse")
        }
    for rel in all_files(pristine):
        shutil.rmtree(damaged)
        shutil.copytree(pristine, damaged)
        corrupt(damaged / rel, where=where)
        name = Path(rel).name
        try:
            index = Index.open(damaged, model=tiny)
        except CorruptIndexError as exc:
            assert name in str(exc), (rel, str(exc))
            continue
        with index:
            assert isinstance(index, EmbeddedIndex)
            for (query, mode), hits in want.items():
                try:
                    got = index.search(query, top_k=5, mode=mode)[0]
                    texts = [h.text for h in got]  # stored texts are read (and checked) on access
                except CorruptIndexError as exc:
                    assert name in str(exc), (rel, str(exc))
                    continue
                assert [h.id for h in got] == [h.id for h in hits], rel
                assert [h.score for h in got] == [h.score for h in hits], rel
                assert texts == [h.text for h in hits], rel
            index.wait_checked()
            with pytest.raises(CorruptIndexError, match=name.replace(".", r"\.")):
                index.search(QUERIES[0], top_k=5)
                index.doc_ids()
                [index.get(d) for d in index.doc_ids()]


@pytest.mark.parametrize(
    ("name", "before"),
    [
        ("dense.f32", "dense scores near 1e37"),
        ("sparse.ptr", "every sparse score silently 0"),
        ("docs.off", "'Expecting value: line 1 column 1', naming no file"),
        ("colbert.off", "'repeats may not contain negative values', naming no file"),
    ],
)
def test_the_reported_corruptions_are_caught(damaged: Path, tiny: Embedder, name: str, before: str) -> None:
    """The four cases of the issue (what they did before in `before`), random bytes over the whole file."""
    path = segment_dir(damaged) / name
    path.write_bytes(np.random.default_rng(7).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())
    with (
        pytest.raises(CorruptIndexError, match=name.replace(".", r"\.")),
        Index.open(damaged, model=tiny) as index,
    ):
        for query in QUERIES:
            [h.text for h in index.search(query, top_k=10)[0]]
            [h.text for h in index.search(query, top_k=10, mode="sparse")[0]]


def test_a_server_does_not_start_on_a_damaged_index(damaged: Path, tiny: Embedder) -> None:
    from trivec.serving.search import IndexSearcher

    corrupt(segment_dir(damaged) / "colbert.codes")
    with pytest.raises(CorruptIndexError, match=r"colbert\.codes"):
        IndexSearcher.open(damaged, tiny, verify=True)
    done = CliRunner().invoke(app, ["serve", "--index", str(damaged), "--port", "0"])
    assert done.exit_code == 2 and "colbert.codes" in done.stderr, done.stderr


def test_segments_without_checksums_still_get_structural_checks(damaged: Path, tiny: Embedder) -> None:
    """An index written before checksums: offsets that do not rise from 0 to the data's end are an error
    naming the file (not a JSON error from a stored document), and verify says how to add checksums."""
    manifest = damaged / "MANIFEST.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for record in data["body"]["segments"]:
        record.pop("checksums")
    from trivec.retrieval.manifest import _checksum

    data["checksum"] = _checksum(data["body"])
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with Index.open(damaged, model=tiny) as index:
        assert isinstance(index, EmbeddedIndex)
        report = index.verify()
        assert report["problems"] == [] and "compact" in report["warnings"][0]
        assert len(index.search(QUERIES[0], top_k=3)[0]) == 3
    off = segment_dir(damaged) / "docs.off"
    values = np.fromfile(off, dtype=np.int64)
    values[5] = -values[5] - 1
    values.tofile(off)
    with pytest.raises(CorruptIndexError, match=r"docs\.off: the offsets are damaged"):
        Index.open(damaged, model=tiny)


def test_compaction_rewrites_a_verified_index_and_refuses_a_damaged_one(
    damaged: Path, tiny: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index.open(damaged, model=tiny) as index:
        assert isinstance(index, EmbeddedIndex)
        index.compact()
        assert index.verify()["problems"] == []
    from trivec.retrieval import segment

    monkeypatch.setattr(segment, "CHECK_AT_OPEN", 0)  # as a large file is: checked when read, not at open
    corrupt(segment_dir(damaged) / "sparse.vals")
    index = Index.open(damaged, model=tiny)
    assert isinstance(index, EmbeddedIndex)
    index.add([{"id": "new", "text": "a new document about wings"}])  # a second segment: compact merges
    manifest = (damaged / "MANIFEST.json").read_bytes()
    with index, pytest.raises(CorruptIndexError, match=r"sparse\.vals"):
        index.compact()  # a damaged segment is never merged into one with fresh checksums
    assert (damaged / "MANIFEST.json").read_bytes() == manifest
