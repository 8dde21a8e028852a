"""What users of sentence-transformers, FlagEmbedding and Qdrant expect of a command line (issue #20, item 9):
--version, a --help that does not load torch, -q on every command, ids carried from input to output, `-` for
stdin and stdout, and progress lines on every long step when stderr is not a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import DATA, TINY_M3
from trivec import Embedder
from trivec.cli import app

TINY = str(TINY_M3)


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_version() -> None:
    code, stdout, _ = run("--version")
    assert code == 0 and stdout.strip() == f"trivec {version('trivec')}"


def test_help_does_not_load_the_heavy_libraries() -> None:
    """`trivec --help` took 5.5 s: the package imported torch, transformers and faiss to print a page."""
    probe = (
        "import sys, trivec.cli; "
        "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'fastapi', 'numba', 'scipy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "trivec.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "encode" in helped.stdout


def leaf_commands(group: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    root = typer.main.get_command(group)
    out: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):  # a group (typer ships its own click)
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            out.append(path)

    walk(root, prefix)
    return out


def test_every_command_takes_q() -> None:
    commands = leaf_commands(app)
    assert ("encode",) in commands and ("index", "verify") in commands and len(commands) >= 12
    for path in commands:
        code, stdout, _ = run(*path, "--help")
        assert code == 0 and "--quiet" in stdout and "-q" in stdout, path


def test_q_silences_progress_and_log_lines(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("one\ntwo\n", encoding="utf-8")
    code, _, stderr = run(
        "encode", "-m", TINY, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "a.jsonl")
    )
    assert code == 0 and "trivec: encoded 2 texts" in stderr and "cls pooling" in stderr, stderr
    for args in (("-q", "encode"), ("encode", "-q")):
        code, _, stderr = run(
            *args, "-m", TINY, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "b.jsonl")
        )
        assert code == 0 and stderr == "", stderr


def test_encode_carries_ids_and_reads_and_writes_stdio(tmp_path: Path, tiny: Embedder) -> None:
    rows = [{"id": "q-1", "text": "what is bge m3"}, {"id": 7, "text": "second"}, {"text": "no id"}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, _, stderr = run("encode", "-m", TINY, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [w.get("id") for w in written] == ["q-1", 7, None]
    assert list(written[0]) == ["id", "dense"]
    # stdin (JSON Lines: its first line is an object) → stdout, same rows
    code, stdout, stderr = run("encode", "-m", TINY, "-i", "-", "-o", "-", "-q", input=source.read_text())
    assert code == 0 and stderr == "", stderr
    assert [json.loads(line) for line in stdout.splitlines()] == written
    # stdin as plain lines
    code, stdout, _ = run("encode", "-m", TINY, "-i", "-", "-o", "-", "-q", input="what is bge m3\nsecond\n")
    plain = [json.loads(line) for line in stdout.splitlines()]
    assert [p["dense"] for p in plain] == [w["dense"] for w in written[:2]] and "id" not in plain[0]


def test_score_search_and_build_read_stdin(tmp_path: Path) -> None:
    pairs = '{"query": "q", "passage": "p"}\n{"query": "wing", "passage": "wing stall"}\n'
    code, stdout, stderr = run("score", "-m", TINY, "-p", "-", input=pairs)
    assert code == 0 and len(stdout.splitlines()) == 2, stderr
    corpus = "".join(
        line + "\n"
        for line in (DATA / "cranfield" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:10]
    )
    ix = str(tmp_path / "ix")
    code, _, stderr = run(
        "index", "build", "-m", TINY, "--corpus", "-", "--index", ix, "--max-length", "64", input=corpus
    )
    assert code == 0 and "indexed 10 documents" in stderr, stderr
    queries = '{"id": "a", "text": "wing"}\n{"id": "b", "text": "boundary layer"}\n'
    code, stdout, stderr = run("search", "--index", ix, "--queries", "-", "--json", "-k", "2", input=queries)
    assert code == 0, stderr
    assert [json.loads(line)["query_id"] for line in stdout.splitlines()] == ["a", "b"]


def test_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long encode printed only 'encode' into a log; now a line per interval (and a last one)."""
    import trivec.cli
    import trivec.progress

    monkeypatch.setattr(trivec.progress, "INTERVAL_S", 0.0)
    monkeypatch.setattr(trivec.cli.embed, "ENCODE_CHUNK", 2)
    (tmp_path / "in.txt").write_text("".join(f"text number {i}\n" for i in range(6)), encoding="utf-8")
    code, _, stderr = run(
        "encode", "-m", TINY, "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.jsonl")
    )
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("trivec: encode:")]
    assert lines[:2] == [line for line in lines if "/6 texts (" in line][:2] and len(lines) >= 3, stderr
    assert "2/6 texts (33%)" in lines[0] and "left" in lines[0] and "6 texts in" in lines[-1], lines
    code, _, stderr = run(
        "index", "build", "-m", TINY, "--corpus", str(DATA / "cranfield" / "corpus.jsonl"),
        "--index", str(tmp_path / "ix"), "--max-length", "32",
    )  # fmt: skip
    assert code == 0 and "trivec: encode: 1,024/1,400 chunks (73%)" in stderr, stderr


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`trivec encode -o - | head -c 100`: the pipe closes under the writer; it stops with the shell's 141
    and no 'Broken pipe' error line."""
    from tests.conftest import TINY_M3

    source = tmp_path / "t.txt"
    source.write_text("".join(f"text number {i} about wings\n" for i in range(400)), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "trivec.cli",
        "encode",
        "-m",
        str(TINY_M3),
        "-i",
        str(source),
        "-o",
        "-",
        "-q",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(100)
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait(120) == 141 and "error" not in error
