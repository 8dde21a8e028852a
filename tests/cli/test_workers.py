"""`--workers` / `--devices` on `trivec encode`, `trivec index build` and `trivec index add`: the same outputs
as one process, bad values refused in one line before a model loads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec.cli import app
from trivec.inference.pool import cpu_count

DOCS = [
    {"id": f"d{i}", "text": " ".join(f"t{(i * 11 + j) % 53}" for j in range(3 + (i * 5) % 40))}
    for i in range(40)
]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def worker_threads() -> Iterator[None]:
    """The in-process reference runs as many torch threads as each of 2 workers: the sparse head's sums are
    split by thread (`trivec.inference.pool`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cpu_count() // 2))
    yield
    torch.set_num_threads(threads)


def test_encode_with_two_workers_writes_what_one_process_writes(tmp_path: Path, worker_threads: None) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    common = ["encode", "-m", str(TINY_M3), "-i", str(source), "--dense", "--sparse", "--colbert", "-q"]
    run(*common, "-o", str(tmp_path / "one.jsonl"), "--batch-tokens", "256")
    run(*common, "-o", str(tmp_path / "two.jsonl"), "--batch-tokens", "256", "--workers", "2")
    one = (tmp_path / "one.jsonl").read_text(encoding="utf-8").splitlines()
    two = (tmp_path / "two.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(one) == len(DOCS) and one == two
    assert [json.loads(line)["id"] for line in two] == [d["id"] for d in DOCS]


def test_index_build_and_add_with_workers_rank_as_one_process(tmp_path: Path, worker_threads: None) -> None:
    first, more = tmp_path / "first.jsonl", tmp_path / "more.jsonl"
    first.write_text("".join(json.dumps(d) + "\n" for d in DOCS[:30]), encoding="utf-8")
    more.write_text("".join(json.dumps(d) + "\n" for d in DOCS[30:]), encoding="utf-8")
    hits = []
    for name, extra in (("one", []), ("two", ["--devices", "cpu,cpu"])):
        ix = str(tmp_path / name)
        run("index", "build", "-m", str(TINY_M3), "-c", str(first), "-x", ix, "-q", *extra)
        run("index", "add", "-c", str(more), "-x", ix, *extra)
        out = run("search", "-x", ix, "t3 t7 t12", "t40 t41", "-k", "10", "--json")
        hits.append(
            [
                [(h["id"], h["score"], h["scores"]) for h in json.loads(line)["hits"]]
                for line in out.splitlines()
            ]
        )
    assert len(hits[0]) == 2 and len(hits[0][0]) == 10
    assert hits[0] == hits[1]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--workers", "0"], "workers must be a positive integer"),
        (["--devices", "cpu,tpu"], "unknown device 'tpu'"),
        (["--workers", "3", "--devices", "cpu,cpu"], "3 workers but 2 devices"),
    ],
)
def test_bad_workers_are_refused_before_the_model_loads(
    tmp_path: Path, args: list[str], problem: str
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a text\n", encoding="utf-8")
    for command in (
        ["encode", "-m", "no-such-model", "-i", str(source), "-o", str(tmp_path / "o.jsonl")],
        ["index", "build", "-m", "no-such-model", "-c", str(source), "-x", str(tmp_path / "ix")],
    ):
        result = CliRunner().invoke(app, [*command, *args])
        assert result.exit_code == 2
        assert problem in result.stderr and result.stderr.count("trivec: error") == 1
