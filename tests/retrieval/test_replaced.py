"""An index built again in the place of an open one (`overwrite=True`): the open handle goes on with the new
index when it holds the same model's vectors under the same settings, refuses to when not, and never writes
the old index's manifest over the new one's (which removed the new index's segments)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.retrieval.conftest import MAX_LENGTH
from trivec import Embedder
from trivec.retrieval import Document, EmbeddedIndex, Index, IndexReplacedError


def build(path: Path, tiny: Embedder, docs: list[Document], **options: object) -> EmbeddedIndex:
    index = Index.build(path, docs, tiny, max_length=MAX_LENGTH, overwrite=True, **options)
    assert isinstance(index, EmbeddedIndex)
    return index


def assert_holds(path: Path, tiny: Embedder, docs: list[Document]) -> None:
    """The index at `path`, opened afresh, is whole and holds exactly `docs`."""
    with Index.open(path, model=tiny) as fresh:
        assert fresh.verify()["problems"] == []
        assert sorted(fresh.doc_ids()) == sorted(d.id for d in docs)


def test_a_handle_reads_the_index_built_again_in_its_place(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    path = tmp_path / "ix"
    build(path, tiny, small_docs[:5]).close()
    with Index.open(path, model=tiny) as old:
        build(path, tiny, small_docs[5:12]).close()  # generation 1 again, other segments
        assert old.refresh() is True
        assert sorted(old.doc_ids()) == sorted(d.id for d in small_docs[5:12])
        with Index.open(path, model=tiny) as fresh:
            assert old.search(small_docs[6].text, top_k=5) == fresh.search(small_docs[6].text, top_k=5)


def test_a_write_through_a_handle_opened_before_the_rebuild_keeps_the_new_index(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    path = tmp_path / "ix"
    build(path, tiny, small_docs[:5]).close()
    with Index.open(path, model=tiny) as old:
        build(path, tiny, small_docs[5:12]).close()
        old.add(small_docs[12:14])  # used to remove the rebuilt segment and commit the old one's names
    assert_holds(path, tiny, small_docs[5:14])


def test_a_handle_refuses_an_index_built_again_with_other_settings(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    path = tmp_path / "ix"
    build(path, tiny, small_docs[:5]).close()
    with Index.open(path, model=tiny) as old:
        build(path, tiny, small_docs[5:12], colbert=False).close()
        with pytest.raises(IndexReplacedError, match="built again since it was opened"):
            old.search("boundary layer", top_k=3)
        with pytest.raises(IndexReplacedError):
            old.add(small_docs[12:14])
    assert_holds(path, tiny, small_docs[5:12])  # the new index as it was built


def test_a_rebuild_waits_for_a_writer_in_the_middle_of_a_commit(
    tmp_path: Path, tiny: Embedder, small_docs: list[Document]
) -> None:
    path = tmp_path / "ix"
    build(path, tiny, small_docs[:5]).close()
    writer = Index.open(path, model=tiny)
    assert isinstance(writer, EmbeddedIndex)
    in_transaction, finished = threading.Event(), threading.Event()

    def write() -> None:
        with writer.transaction():
            writer.add(small_docs[12:14])
            in_transaction.set()
            time.sleep(1.0)
        finished.set()

    thread = threading.Thread(target=write)
    thread.start()
    assert in_transaction.wait(60)
    build(path, tiny, small_docs[5:12]).close()  # renames the old index aside only after its commit
    thread.join()
    writer.close()
    assert finished.is_set()
    assert_holds(path, tiny, small_docs[5:12])
