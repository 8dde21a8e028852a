"""Corpus input: JSONL and folders, errors naming file and line, token-window chunking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec import Embedder
from trivec.errors import InputError
from trivec.retrieval import Document, chunk_documents, read_corpus
from trivec.retrieval.corpus import _windows, word_aligned


def test_jsonl_corpus_with_titles_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"id": "a", "title": "T", "text": "alpha", "source": "x"}\n\n{"id": 7, "text": "beta"}\n',
        encoding="utf-8",
    )
    docs = read_corpus(path)
    assert [d.id for d in docs] == ["a", "7"]
    assert docs[0].title == "T" and docs[0].metadata == {"source": "x"}
    assert docs[1].title is None


def test_folder_corpus(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# second", encoding="utf-8")
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    docs = read_corpus(tmp_path)
    assert [(d.id, d.text) for d in docs] == [("a.txt", "first"), ("sub/b.md", "# second")]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n', "c.jsonl:2: duplicate document id 'a'"),
        ('{"text": "x"}\n', "c.jsonl:1: missing field 'id'"),
        ('{"id": "a"}\n', "c.jsonl:1: field 'text' is missing"),
        ('{"id": "a", "text": 3}\n', "c.jsonl:1: field 'text' is a number, not a string"),
        ('{"id": "a", "text": "x"}\n{oops\n', "c.jsonl:2: invalid JSON"),
        ("\n\n", "the corpus has no documents"),
    ],
)
def test_bad_corpus_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        read_corpus(path)


def test_missing_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="no documents"):
        read_corpus(tmp_path)
    (tmp_path / "c.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"a \.jsonl file or a folder"):
        read_corpus(tmp_path / "c.csv")


def test_windows_cover_every_token_with_overlap() -> None:
    assert _windows(5, 10, 8) == [(0, 5)]
    windows = _windows(25, 10, 8)
    assert windows == [(0, 10), (8, 18), (15, 25)]
    covered = set().union(*(range(s, e) for s, e in windows))
    assert covered == set(range(25))


def test_chunks_map_back_to_documents(minilm: Embedder, cranfield_docs: list[Document]) -> None:
    docs = cranfield_docs[:5]
    chunks = chunk_documents(docs, minilm.tokenizer, chunk_tokens=32, overlap=8)
    by_doc: dict[str, list[str]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk.id)
        assert chunk.text and chunk.text in next(d.text for d in docs if d.id == chunk.doc_id)
        assert len(minilm.tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) <= 32 + 2
    assert list(by_doc) == [d.id for d in docs]
    for doc in docs:
        n_tokens = len(minilm.tokenizer(doc.text, add_special_tokens=False)["input_ids"])
        ids = by_doc[doc.id]
        assert ids == ([doc.id] if n_tokens <= 32 else [f"{doc.id}#{i}" for i in range(len(ids))])
    with pytest.raises(InputError, match="overlap"):
        chunk_documents(docs, minilm.tokenizer, chunk_tokens=8, overlap=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=80), st.integers(2, 12), st.data())
def test_word_aligned_windows_still_cover_every_token(
    starts: list[bool], size: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    windows = _windows(len(starts), size, size - overlap)
    aligned = word_aligned(windows, starts, overlap // 2)
    assert set().union(*(range(s, e) for s, e in aligned)) == set(range(len(starts)))
    for (start, end), (old_start, old_end) in zip(aligned, windows, strict=True):
        assert old_start <= start < end <= old_end and end - start <= size
        assert start - old_start <= overlap // 2 and old_end - end <= overlap // 2


def test_chunks_start_and_end_on_whole_words(minilm: Embedder, cranfield_docs: list[Document]) -> None:
    doc = next(d for d in cranfield_docs if len(d.text) > 1500)
    chunks = chunk_documents([doc], minilm.tokenizer, chunk_tokens=48, overlap=16)
    assert len(chunks) > 2
    for chunk in chunks:
        begin = doc.text.index(chunk.text)
        assert begin == 0 or doc.text[begin - 1].isspace(), chunk.text[:30]
        end = begin + len(chunk.text)
        assert end == len(doc.text) or doc.text[end].isspace(), chunk.text[-30:]


def test_documents_without_text_are_kept_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real corpora have them (Cranfield's 471): kept under their ids, and said."""
    path = tmp_path / "c.jsonl"
    rows = ['{"id": "a", "text": ""}', '{"id": "b", "text": "wings"}', '{"id": "c", "text": " \\n "}']
    path.write_text(
        "\n".join(rows) + '\n{"id": "d", "title": "Only a title", "text": ""}\n', encoding="utf-8"
    )
    with caplog.at_level("WARNING", logger="trivec"):
        docs = read_corpus(path)
    assert [d.id for d in docs] == ["a", "b", "c", "d"]
    assert "2 document(s) without text ('a', 'c')" in caplog.text
    caplog.clear()
    path.write_text('{"id": "b", "text": "wings"}\n', encoding="utf-8")
    with caplog.at_level("WARNING", logger="trivec"):
        read_corpus(path)
    assert "without text" not in caplog.text
