"""Input readers and the atomic writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivec.errors import InputError
from trivec.io import atomic_writer, decode_utf8, iter_jsonl, read_pairs, read_texts


def test_txt_lines_keep_empty_lines_and_strip_crlf(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"one\r\n\ntwo\n")
    assert read_texts(path) == ["one", "", "two"]
    path.write_bytes(b"")
    assert read_texts(path) == []


def test_non_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(InputError, match="not UTF-8"):
        read_texts(path)


def test_a_bad_byte_is_reported_on_its_line_and_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    rows = [b'{"id": "%d", "text": "row %d"}\n' % (i, i) for i in range(10)]
    rows[6] = b'{"id": "6", "text": "caf\xe9"}\n'  # Latin-1, not UTF-8
    jsonl.write_bytes(b"".join(rows))
    with pytest.raises(InputError, match=r"c.jsonl:7: not UTF-8 text \(byte 25 of the line"):
        list(iter_jsonl(jsonl))
    text = tmp_path / "t.txt"
    text.write_bytes(b"one\ntwo\nthr\xffee\n")
    with pytest.raises(InputError, match=r"t.txt:3: not UTF-8 text \(byte 4 of the line"):
        read_texts(text)
    jsonl.write_bytes(b'\xef\xbb\xbf{"text": "a"}\n{"text": "b"}\n')  # as some editors save it
    assert [row["text"] for _, row in iter_jsonl(jsonl)] == ["a", "b"]
    text.write_bytes(b"\xef\xbb\xbfone\ntwo\n")
    assert read_texts(text) == ["one", "two"]
    assert decode_utf8("\ufeffx\ufeff".encode(), "s") == "x\ufeff"  # only a leading mark is dropped


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"query": "q", "passage": "p"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"p.jsonl:2: expected a JSON object"):
        read_pairs(path)
    with pytest.raises(InputError, match="is a directory"):
        read_texts(tmp_path)


def test_atomic_writer_keeps_old_content_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write("partial")
        raise RuntimeError("boom")
    assert path.read_text(encoding="utf-8") == "old"
    assert list(tmp_path.iterdir()) == [path]
    with atomic_writer(path) as handle:
        handle.write("new")
    assert path.read_text(encoding="utf-8") == "new"
