"""The `trivec encode` / `trivec score` commands, run as a user would (a real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec import Embedder
from trivec.cli import app

TINY = str(TINY_M3)


def trivec(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "trivec.cli", *args], capture_output=True, text=True, timeout=300
    )


def trivec_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in this process (fast; same code path below the argument parser)."""
    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_encode_txt_all_outputs_in_input_order(tmp_path: Path, tiny: Embedder) -> None:
    texts = ["a much longer text about dense and sparse retrieval models", "", "short"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = trivec(
        "encode",
        "--model",
        TINY,
        "--input",
        str(source),
        "--output",
        str(out),
        "--dense",
        "--sparse",
        "--colbert",
    )
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(out)
    assert len(rows) == 3 and all(set(r) == {"dense", "sparse", "colbert"} for r in rows)
    expected = tiny.encode(texts, sparse=True, colbert=True)
    np.testing.assert_allclose([r["dense"] for r in rows], expected.dense, atol=1e-6)
    for row, sparse, colbert in zip(rows, expected.sparse, expected.colbert, strict=True):
        assert row["sparse"]["indices"] == sparse.indices.tolist()
        np.testing.assert_allclose(row["sparse"]["values"], sparse.values, atol=1e-6)
        np.testing.assert_allclose(np.array(row["colbert"]).reshape(colbert.shape), colbert, atol=1e-6)


def test_encode_jsonl_with_prompt_only_asked_keys(tmp_path: Path, tiny: Embedder) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "what is m3"}\n\n{"text": "second"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = trivec("encode", "-m", TINY, "-i", str(source), "-o", str(out), "--sparse", "--prompt", "Q: ")
    assert done.returncode == 0, done.stderr
    rows = read_jsonl(out)
    assert [set(r) for r in rows] == [{"sparse"}, {"sparse"}]
    # the prompt's tokens carry no lexical weight: as the library encodes with that prompt, not as the
    # texts typed with it in front
    expected = tiny.encode(["what is m3", "second"], dense=False, sparse=True, prompt="Q: ")
    assert [r["sparse"]["indices"] for r in rows] == [v.indices.tolist() for v in expected.sparse]


def test_encode_with_the_model_prompts(tmp_path: Path, tiny_prompted_dir: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("what is m3\nsecond\n", encoding="utf-8")
    embedder = Embedder.from_pretrained(tiny_prompted_dir, device="cpu")
    for flags, prefix in ((["--prompt-name", "document"], "passage: "), (["--query"], "query: "), ([], "")):
        out = tmp_path / "out.jsonl"
        done = trivec_in_process(
            "encode", "-m", str(tiny_prompted_dir), "-i", str(source), "-o", str(out), *flags
        )
        assert done.returncode == 0, done.stderr
        expected = embedder.encode([prefix + "what is m3", prefix + "second"], prompt="").dense
        np.testing.assert_allclose([r["dense"] for r in read_jsonl(out)], expected, atol=1e-6)


def test_score_prints_modes_and_hybrids(tmp_path: Path, tiny: Embedder) -> None:
    pairs = [("what is m3", "M3 is an embedding model"), ("北京", "北京是中国的首都。")]
    source = tmp_path / "pairs.jsonl"
    source.write_text(
        "".join(json.dumps({"query": q, "passage": p}) + "\n" for q, p in pairs), encoding="utf-8"
    )
    done = trivec("score", "--model", TINY, "--pairs", str(source), "--weights", "0.4,0.2,0.4")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    expected = tiny.score_pairs(pairs, weights=[0.4, 0.2, 0.4])
    assert len(rows) == 2 and set(rows[0]) == set(expected)
    for mode, values in expected.items():
        np.testing.assert_allclose([r[mode] for r in rows], values, atol=2e-6)
    prompted = trivec_in_process(
        "score", "--model", TINY, "--pairs", str(source), "--query-prompt", "Q: ", "--document-prompt", "P: "
    )
    assert prompted.returncode == 0, prompted.stderr
    expected = tiny.score_pairs(pairs, query_prompt="Q: ", document_prompt="P: ")
    rows = [json.loads(line) for line in prompted.stdout.splitlines()]
    np.testing.assert_allclose([r["dense"] for r in rows], expected["dense"], atol=2e-6)


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["encode", "-i", "{missing}", "-o", "{out}"], None, "no such file"),
        (["encode", "-i", "{src}.csv", "-o", "{out}"], "a,b\n", "unsupported input type"),
        (
            ["encode", "-i", "{src}.jsonl", "-o", "{out}"],
            '{"text": "ok"}\n{"text": 3}\n',
            ":2: field 'text' is a number, not a string",
        ),
        (["encode", "-i", "{src}.jsonl", "-o", "{out}"], '{"text": "ok"}\nnot json\n', ":2: invalid JSON"),
        (
            ["encode", "-i", "{src}.txt", "-o", "{out}", "--max-length", "99999"],
            "x\n",
            "exceeds the model's limit",
        ),
        (
            ["encode", "-i", "{src}.txt", "-o", "{out}", "-m", "/no/such/model"],
            "x\n",
            "neither a local directory",
        ),
        (
            ["encode", "-i", "{src}.txt", "-o", "{out}", "--prompt-name", "nope"],
            "x\n",
            "unknown prompt name 'nope'",
        ),
        (
            ["encode", "-i", "{src}.txt", "-o", "{out}", "--query", "--prompt-name", "document"],
            "x\n",
            "--query means --prompt-name query",
        ),
        (["score", "-p", "{src}.jsonl"], '{"query": "q"}\n', ":1: field 'passage' is missing"),
        (
            ["score", "-p", "{src}.jsonl", "--weights", "1,x,2"],
            '{"query": "q", "passage": "p"}\n',
            "--weights",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], content: str | None, message: str
) -> None:
    src = tmp_path / "src"
    if content is not None:
        suffix = next(a for a in args if a.startswith("{src}")).removeprefix("{src}")
        (tmp_path / f"src{suffix}").write_text(content, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n", encoding="utf-8")
    filled = [a.format(src=src, out=out, missing=tmp_path / "missing.txt") for a in args]
    if "-m" not in filled:
        filled += ["-m", TINY]
    done = trivec_in_process(*filled)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("trivec: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert all(line.startswith("trivec: ") for line in lines), done.stderr  # log lines, never a traceback
    assert out.read_text(encoding="utf-8") == "previous results\n"  # a failed run loses no data


def test_real_process_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = trivec("encode", "-m", TINY, "-i", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"trivec: error: {tmp_path / 'nope.txt'}: no such file"]
    assert trivec("encode", "--no-such-flag").returncode == 2


def test_ctrl_c_is_one_line_and_exit_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Embedder, "encode", interrupted)
    src = tmp_path / "in.txt"
    src.write_text("one\ntwo\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    out.write_text("previous results\n", encoding="utf-8")
    done = trivec_in_process("encode", "-m", TINY, "-i", str(src), "-o", str(out))
    assert done.returncode == 130
    assert [line for line in done.stderr.splitlines() if line.strip()][-1] == "trivec: interrupted"
    assert out.read_text(encoding="utf-8") == "previous results\n"  # an interrupted run loses no data


def test_asking_a_dense_only_model_for_sparse_says_what_to_do_in_command_terms(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a text\n", encoding="utf-8")
    done = trivec(
        "encode", "-m", "all-MiniLM-L6-v2", "-i", str(source), "-o", str(tmp_path / "o.jsonl"), "--sparse"
    )
    assert done.returncode == 2 and "no sparse head" in done.stderr
    assert "trivec train m3" in done.stderr and "heads='init'" not in done.stderr
