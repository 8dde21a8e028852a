"""`trivec train retromae`: a tiny run from a YAML recipe + encoder JSON, resume, and clear errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training.retromae.conftest import FIXTURE_CORPUS
from trivec.cli import app
from trivec.errors import InputError
from trivec.training.retromae.arguments import build_arguments, read_yaml

REPO = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture
def encoder_json(tmp_path: Path) -> Path:
    path = tmp_path / "encoder.json"
    config = {
        "model_type": "bert",
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_train_from_yaml_and_json_then_resume(tmp_path: Path, encoder_json: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "tokenizer: all-MiniLM-L6-v2\n"
        f"corpus: [{FIXTURE_CORPUS}]\n"
        "max_seq_length: 32\n"
        "per_device_train_batch_size: 4\n"
        "learning_rate: 0.001\n"
        "logging_steps: 2\n"
        "save_strategy: steps\n"
        "save_steps: 3\n"
        "report_to: [tensorboard]\n"
        "disable_tqdm: true\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    args = ["train", "retromae", "-c", str(recipe), "-c", str(encoder_json), "-o", str(out)]
    result = runner.invoke(app, [*args, "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "encoder_model" / "config.json").is_file()
    assert (out / "encoder_model" / "tokenizer.json").is_file()
    assert (out / "checkpoint-3" / "model.safetensors").is_file()
    assert any((out / "runs").rglob("events.out.tfevents.*"))
    with (out / "log.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {"loss", "encoder_loss", "decoder_loss", "learning_rate", "grad_norm"} <= set(rows[0])
    # continue the same run to 6 steps from its last checkpoint
    result = runner.invoke(app, [*args, "--max-steps", "6", "--resume", "last"])
    assert result.exit_code == 0, result.output
    state = json.loads((out / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 6


def test_mlm_objective_from_flags(tmp_path: Path, encoder_json: Path) -> None:
    out = tmp_path / "mlm"
    result = runner.invoke(
        app,
        [
            "train", "retromae", "--config", str(encoder_json), "--tokenizer", "all-MiniLM-L6-v2",
            "--corpus", f"{FIXTURE_CORPUS},{FIXTURE_CORPUS}", "-o", str(out), "--objective", "mlm",
            "--max-steps", "2", "--batch-size", "2", "--max-seq-length", "24",
            "--set", "report_to=[]", "--set", "save_strategy=no", "--set", "disable_tqdm=true", "--set", "logging_steps=1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "log.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("loss")]
    assert len(rows) == 2 and rows[0]["encoder_loss"] and "decoder_loss" not in rows[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "all-MiniLM-L6-v2", "--config", "{json}"], "exactly one of --model"),
        (["--config", "{json}"], "needs --tokenizer"),
        (
            ["--model", "all-MiniLM-L6-v2", "--corpus", "/nonexistent.jsonl"],
            "/nonexistent.jsonl does not exist",
        ),
        (
            ["--model", "all-MiniLM-L6-v2", "--set", "no_such_argument=1"],
            "unknown argument(s) no_such_argument",
        ),
        (
            ["--model", "all-MiniLM-L6-v2", "--encoder-mlm-probability", "0"],
            "encoder_mlm_probability must lie in",
        ),
        (["--model", "all-MiniLM-L6-v2", "--max-seq-length", "4096"], "exceeds the model's 512 positions"),
    ],
)
def test_bad_arguments_fail_with_one_line(
    tmp_path: Path, encoder_json: Path, extra: list[str], message: str
) -> None:
    args = [a.replace("{json}", str(encoder_json)) for a in extra]
    if "--corpus" not in args:
        args += ["--corpus", str(FIXTURE_CORPUS)]
    result = runner.invoke(app, ["train", "retromae", "-o", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_bad_corpus_line_is_named(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": 7}\n', encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "train",
            "retromae",
            "--model",
            "all-MiniLM-L6-v2",
            "--corpus",
            str(corpus),
            "-o",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 2
    assert f"{corpus}:2: field 'text' is a int" in result.output


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.yaml:\d+: invalid YAML"):
        read_yaml(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(InputError, match="expected a mapping"):
        read_yaml(bad)
    with pytest.raises(InputError, match="no output directory"):
        build_arguments({"model": "all-MiniLM-L6-v2", "corpus": [str(FIXTURE_CORPUS)]})


def test_shipped_recipes_parse(tmp_path: Path) -> None:
    for recipe in sorted((REPO / "configs").glob("retromae*.yaml")):
        values = read_yaml(recipe)
        values.setdefault("output_dir", str(tmp_path))
        values["corpus"] = [str(FIXTURE_CORPUS)]
        if "config" not in values:
            values.setdefault("model", "all-MiniLM-L6-v2")
        parsed, training = build_arguments(values, source=str(recipe))
        assert parsed.objective in ("retromae", "mlm") and training.learning_rate > 0
