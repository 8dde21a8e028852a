"""Input readers and the atomic writer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trivec.errors import InputError
from trivec.io import (
    atomic_writer,
    check_output_path,
    decode_utf8,
    iter_jsonl,
    read_pairs,
    read_texts,
    remove_stale_staging,
    staged_directory,
)


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


def test_a_killed_builds_staging_directory_is_removed_by_the_next_build(tmp_path: Path) -> None:
    """A build killed (SIGKILL) leaves `.<name>.building-<id>` behind; the next build of that target removes it
    once no process holds its owner file locked — never a running build's (here: another process's lock)."""
    target = tmp_path / "ix"
    for name in ("dead", "live"):
        staging = tmp_path / f".ix.building-{name}"
        staging.mkdir()
        (staging / "segment.bin").write_bytes(b"x" * 100)
        (tmp_path / f".ix.building-{name}.owner").write_text("host 1\n", encoding="utf-8")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / ".ix.building-live.owner")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        with staged_directory(target, "building", lambda: None) as staging:
            staging.mkdir()
            (staging / "MANIFEST").write_text("new", encoding="utf-8")
            owner = staging.with_name(staging.name + ".owner")
            assert owner.read_text().split() == [socket.gethostname(), str(os.getpid())]
            assert remove_stale_staging(target, "building") == []  # this build's own: locked, kept
    finally:
        holder.kill()
        holder.wait()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".ix.building-live", ".ix.building-live.owner", "ix"]
    assert (target / "MANIFEST").read_text() == "new"
    assert remove_stale_staging(target, "building") == [tmp_path / ".ix.building-live"]  # its holder is gone


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_failed_final_rename_puts_the_old_target_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ix"
    target.mkdir()
    (target / "MANIFEST").write_text("old", encoding="utf-8")
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(dst)) == target and ".building-" in str(src):  # the staged index moving into place
            raise OSError(28, "No space left on device")
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    reached = []
    with (
        pytest.raises(OSError, match="No space"),
        staged_directory(target, "building", lambda: None) as staging,
    ):
        staging.mkdir()
        reached.append(staging)
    assert reached  # the failure is the final rename's, not an earlier one's
    monkeypatch.undo()
    assert (target / "MANIFEST").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


def test_line_ends_are_read_as_text_mode_reads_them(tmp_path: Path) -> None:
    r"""\r\n and a lone \r end lines (old Mac files, some exports); other separators stay inside a line."""
    text = tmp_path / "t.txt"
    text.write_bytes(b"one\rtwo\r\nthree\n")
    assert read_texts(text) == ["one", "two", "three"]
    rows = tmp_path / "r.jsonl"
    rows.write_bytes(b'{"text": "a"}\r{"text": "b\xe2\x80\xa8c"}\r\n{"text": "d"}')  # U+2028 inside a string
    assert [(n, row["text"]) for n, row in iter_jsonl(rows)] == [(1, "a"), (2, "b\u2028c"), (3, "d")]
    rows.write_bytes(b'{"text": "a"}\r{"text": \xff}\r\n')
    with pytest.raises(InputError, match=r"r.jsonl:2: not UTF-8 text"):
        list(iter_jsonl(rows))
    assert read_text_file_of(tmp_path, b"line one\r\nline two\rend") == "line one\nline two\nend"


def read_text_file_of(folder: Path, data: bytes) -> str:
    from trivec.io import read_text_file

    path = folder / "whole.txt"
    path.write_bytes(data)
    return read_text_file(path)


def test_an_output_that_is_one_of_the_inputs_is_refused_before_any_work(tmp_path: Path) -> None:
    """`trivec encode -i x -o x` replaced the texts by their vectors, and `trivec mine --data x -o x` rewrote
    the training file, both with exit 0; the same file under another name (a link) is caught too."""
    from typer.testing import CliRunner

    from tests.conftest import TINY_M3
    from trivec.cli import app

    texts = tmp_path / "texts.txt"
    texts.write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to(texts)
    with pytest.raises(InputError, match=r"link\.txt: the output would replace the input .*texts\.txt"):
        check_output_path(tmp_path / "link.txt", inputs=[None, texts])
    assert check_output_path(tmp_path / "new.txt", inputs=[texts]) == tmp_path / "new.txt"
    assert str(check_output_path("-", inputs=["-"])) == "-"
    result = CliRunner().invoke(app, ["encode", "-m", str(TINY_M3), "-i", str(texts), "-o", str(texts)])
    assert result.exit_code == 2 and "would replace the input" in result.stderr
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"query": "q", "pos": ["p"]}\n', encoding="utf-8")
    before = rows.read_bytes()
    mine = ["mine", "--retriever", "bm25", "--data", str(rows), "--output", str(rows)]
    result = CliRunner().invoke(app, mine)
    assert result.exit_code == 2 and "would replace the input" in result.stderr
    assert texts.read_text(encoding="utf-8") == "one\ntwo\n" and rows.read_bytes() == before


def test_a_title_goes_before_its_text_where_asked(tmp_path: Path) -> None:
    """`trivec encode` reads titles as an index does (`"{title} {text}"`), so it reproduces an index's vectors."""
    from trivec.io import read_records
    from trivec.retrieval.corpus import Chunk

    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"id": 1, "title": "Camel", "text": "It eats grass."}\n{"text": "untitled"}\n', encoding="utf-8"
    )
    assert read_records(rows) == [(1, "It eats grass."), (None, "untitled")]
    titled = read_records(rows, title_field="title")
    assert titled == [(1, "Camel It eats grass."), (None, "untitled")]
    assert titled[0][1] == Chunk("1", "1", "It eats grass.", "Camel").embed_text
    rows.write_text('{"title": 3, "text": "x"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows\.jsonl:1: field 'title' is a number, not a string"):
        read_records(rows, title_field="title")
