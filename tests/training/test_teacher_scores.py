"""`trivec data scores`: teacher scores added to training rows — equal to the teacher's own scores, resumable
after a stop, never a half-written output, and accepted by `train m3 --knowledge-distillation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3, TINY_RERANKER
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.cli import app
from trivec.errors import CheckpointError, InputError
from trivec.inference import Embedder
from trivec.inference.reranker import Reranker
from trivec.training.examples import load_examples
from trivec.training.teacher import Teacher, file_digest, load_teacher, partial_paths, score_rows

runner = CliRunner()


@pytest.fixture(scope="module")
def reranker_teacher() -> Teacher:
    return load_teacher(TINY_RERANKER, device="cpu")


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_reranker_scores_are_the_rerankers(tmp_path: Path, reranker_teacher: Teacher) -> None:
    rows = synthetic_rows(5)
    rows[0]["pos_scores"], rows[0]["neg_scores"] = [9.0], [9.0, 9.0, 9.0]  # replaced
    rows[1]["prompt"], rows[1]["type"] = "Represent: ", "normal"  # kept
    rows[2]["neg"] = []
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    stats = score_rows(reranker_teacher, data, tmp_path / "out.jsonl", progress=False)
    assert stats.rows == 5 and stats.pairs == sum(1 + len(r["neg"]) for r in rows) and stats.resumed == 0
    reranker = Reranker.from_pretrained(TINY_RERANKER, device="cpu")
    out = read(tmp_path / "out.jsonl")
    for row, scored in zip(rows, out, strict=True):
        assert {k: v for k, v in scored.items() if not k.endswith("_scores")} == {
            k: v for k, v in row.items() if not k.endswith("_scores")
        }
        expected = reranker.score([(row["query"], p) for p in (*row["pos"], *row["neg"])])
        np.testing.assert_allclose(scored["pos_scores"] + scored["neg_scores"], expected, atol=1e-6)
    assert out[2]["neg_scores"] == []
    assert not any(p.exists() for p in partial_paths(tmp_path / "out.jsonl"))
    assert all(
        ex.pos_scores is not None and ex.neg_scores is not None
        for ex in load_examples(tmp_path / "out.jsonl", need_scores=True)
    )


def test_embedder_modes(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    embedder = Embedder.from_pretrained(TINY_M3, device="cpu")
    pairs = [(r["query"], p) for r in rows for p in (*r["pos"], *r["neg"])]
    reference = embedder.score_pairs(pairs)
    auto = load_teacher(TINY_M3, device="cpu")
    assert auto.mode == "all"
    for mode, key in (("all", "colbert+sparse+dense"), ("colbert", "colbert"), ("dense", "dense")):
        teacher = auto if mode == "all" else Teacher(embedder, mode, str(TINY_M3))
        score_rows(teacher, data, tmp_path / f"{mode}.jsonl", progress=False)
        got = [
            s for row in read(tmp_path / f"{mode}.jsonl") for s in (*row["pos_scores"], *row["neg_scores"])
        ]
        np.testing.assert_allclose(got, reference[key], atol=1e-6)


def test_temperature_divides_the_scores_and_is_part_of_what_a_resumed_run_must_match(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(3))
    raw, cooled = tmp_path / "raw.jsonl", tmp_path / "cooled.jsonl"
    score_rows(load_teacher(TINY_M3, "all", device="cpu"), data, raw, progress=False)
    teacher = load_teacher(TINY_M3, "all", device="cpu", temperature=0.02)
    score_rows(teacher, data, cooled, progress=False)
    for a, b in zip(read(raw), read(cooled), strict=True):
        np.testing.assert_allclose(
            np.array(b["pos_scores"] + b["neg_scores"]) * 0.02, a["pos_scores"] + a["neg_scores"], rtol=1e-6
        )
    partial, state = partial_paths(tmp_path / "again.jsonl")
    partial.write_text(raw.read_text(encoding="utf-8").splitlines(keepends=True)[0], encoding="utf-8")
    state.write_text(  # an unfinished run of the same input and teacher without a temperature
        json.dumps({"data_sha256": file_digest(data), "teacher": teacher.name, "mode": "all"}),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="unfinished run with another input, teacher or mode"):
        score_rows(teacher, data, tmp_path / "again.jsonl", progress=False)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="teacher temperature must be a positive number"):
            load_teacher(TINY_M3, "all", device="cpu", temperature=bad)


class Stop(Exception):
    pass


def test_a_stopped_run_resumes_and_the_output_appears_only_at_the_end(
    tmp_path: Path, reranker_teacher: Teacher
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(7))
    fresh = tmp_path / "fresh.jsonl"
    score_rows(reranker_teacher, data, fresh, chunk_rows=2, progress=False)
    target = tmp_path / "out.jsonl"
    calls = {"n": 0}

    class Flaky(Teacher):
        def score(self, pairs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 3:
                raise Stop
            return super().score(pairs)

    flaky = Flaky(reranker_teacher.model, reranker_teacher.mode, reranker_teacher.name)
    with pytest.raises(Stop):
        score_rows(flaky, data, target, chunk_rows=2, progress=False)
    partial, state = partial_paths(target)
    assert not target.exists() and partial.exists() and state.exists()
    assert len(read(partial)) == 4
    with partial.open("a", encoding="utf-8") as handle:  # a row cut short by the stop
        handle.write('{"query": "half a ro')
    stats = score_rows(reranker_teacher, data, target, chunk_rows=2, progress=False)
    assert stats.resumed == 4 and stats.pairs == 3 * 4
    assert target.read_bytes() == fresh.read_bytes()
    assert not partial.exists() and not state.exists()


def test_an_unfinished_run_of_another_teacher_is_not_resumed(
    tmp_path: Path, reranker_teacher: Teacher
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(3))
    target = tmp_path / "out.jsonl"
    partial, state = partial_paths(target)
    partial.write_text('{"query": "x"}\n', encoding="utf-8")
    state.write_text(json.dumps({"teacher": "another"}), encoding="utf-8")
    with pytest.raises(InputError, match="unfinished run with another input, teacher or mode"):
        score_rows(reranker_teacher, data, target, progress=False)
    assert not target.exists()
    score_rows(reranker_teacher, data, target, resume=False, progress=False)
    assert len(read(target)) == 3


def test_bad_rows_fail_before_anything_is_written(tmp_path: Path, reranker_teacher: Teacher) -> None:
    rows: list[Any] = synthetic_rows(3)
    rows[2] = {"query": "q", "neg": ["n"]}
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    with pytest.raises(InputError, match=r"in\.jsonl:3: field 'pos' is missing"):
        score_rows(reranker_teacher, data, tmp_path / "out.jsonl", progress=False)
    assert list(tmp_path.iterdir()) == [data]
    with pytest.raises(InputError, match="would replace the input"):
        score_rows(reranker_teacher, write_jsonl(data, synthetic_rows(2)), data, progress=False)


def test_teacher_modes_must_fit_the_model() -> None:
    with pytest.raises(CheckpointError, match="is not a reranker"):
        load_teacher(TINY_M3, "reranker", device="cpu")
    with pytest.raises(InputError, match="is a cross-encoder: it gives reranker scores"):
        load_teacher(TINY_RERANKER, "dense", device="cpu")
    with pytest.raises(InputError, match="teacher mode must be one of reranker, all, colbert, dense"):
        load_teacher(TINY_RERANKER, "sparse", device="cpu")


def test_cli_scores_then_train_m3_with_knowledge_distillation(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(8))
    scored = tmp_path / "scored.jsonl"
    result = runner.invoke(
        app, ["data", "scores", "--teacher", str(TINY_RERANKER), "--data", str(data), "--output", str(scored)]
    )
    assert result.exit_code == 0, result.output
    assert len(read(scored)) == 8
    train = [
        "train", "m3", "--data", str(scored), "--output", str(tmp_path / "out"), "--model", str(TINY_M3),
        "--group-size", "3", "--batch-size", "4", "--max-steps", "2", "--knowledge-distillation",
        "--set", "report_to=[]", "--set", "disable_tqdm=true", "--set", "save_strategy=no", "--set", "use_cpu=true",
    ]  # fmt: skip
    result = runner.invoke(app, train)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "colbert_linear.pt").is_file()


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(2))
    out = tmp_path / "out.jsonl"
    for args, needle in (
        (["--teacher", str(TINY_RERANKER), "--data", str(tmp_path / "nope.jsonl")], "--data"),
        (
            ["--teacher", str(TINY_RERANKER), "--data", str(data), "--teacher-mode", "sparse"],
            "--teacher-mode must",
        ),
        (
            ["--teacher", str(TINY_RERANKER), "--data", str(data), "--teacher-mode", "dense"],
            "--teacher-mode reranker",
        ),
        (["--teacher", str(TINY_M3), "--data", str(data), "--teacher-mode", "reranker"], "is not a reranker"),
        (["--teacher", str(TINY_M3), "--data", str(data), "--temperature", "0"], "--temperature must be"),
    ):
        result = runner.invoke(app, ["data", "scores", *args, "--output", str(out)])
        lines = [line for line in result.output.splitlines() if line.startswith("trivec: error:")]
        assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output
        assert not out.exists()
