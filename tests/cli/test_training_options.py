"""The training commands' options are named after the fields they set — a dataclass field of the recipe or a
Hugging Face `TrainingArguments` argument, with the flag made from the name — so no option is renamed by hand;
the shorter flags of before still reach the same fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from transformers import TrainingArguments
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from trivec.cli import app
from trivec.cli.common import field_names
from trivec.training.arguments import DataArguments, LossArguments, ModelArguments
from trivec.training.reranker import RerankerConfig
from trivec.training.retromae.arguments import RetroMAEArguments

CONTRASTIVE = (ModelArguments, DataArguments, LossArguments, TrainingArguments)
SETTINGS: dict[str, tuple[type, ...]] = {
    "contrastive": CONTRASTIVE,
    "m3": CONTRASTIVE,
    "retromae": (RetroMAEArguments, TrainingArguments),
    "reranker": (RerankerConfig,),
}
# the only options that set no field: the YAML recipes (and RetroMAE's encoder .json), --set KEY=VALUE, -q
NO_FIELD = {"config_files", "set_", "quiet"}
runner = CliRunner()


def train_command(name: str) -> TyperCommand:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    train = group.commands["train"]
    assert isinstance(train, TyperGroup)
    command = train.commands[name]
    assert isinstance(command, TyperCommand)
    return command


@pytest.mark.parametrize("name", SETTINGS)
def test_every_option_is_named_after_the_field_it_sets(name: str) -> None:
    fields = field_names(*SETTINGS[name])
    params = train_command(name).params
    assert {p.name for p in params} - fields - NO_FIELD == set()
    for param in params:
        if param.name in fields:  # the first flag is the field's name; the others are aliases
            assert param.opts[0] == "--" + str(param.name).replace("_", "-")


@pytest.mark.parametrize("name", SETTINGS)
def test_help_shows_every_option_under_its_full_name(name: str) -> None:
    shown = runner.invoke(app, ["train", name, "--help"], env={"COLUMNS": "100"}).output
    missing = [p.opts[0] for p in train_command(name).params if p.opts[0] not in shown]
    assert not missing, shown


def capture(monkeypatch: pytest.MonkeyPatch, target: str) -> list[tuple[Any, ...]]:
    """Replace the training function `target` by one that records its arguments: the options are parsed and
    the settings built, nothing trains."""
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any) -> str:
        calls.append(args)
        return "out"

    monkeypatch.setattr(target, record)
    return calls


def field_value(parts: tuple[Any, ...], name: str) -> Any:
    """The value of field `name` in whichever of the run's settings objects has it."""
    (value,) = [getattr(part, name) for part in parts if name in field_names(type(part))]
    return value


@pytest.mark.parametrize("name", ["contrastive", "m3"])
def test_fine_tuning_aliases_reach_their_fields(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = capture(monkeypatch, "trivec.training.train.train_contrastive")
    out, data = tmp_path / "run", tmp_path / "rows.jsonl"
    result = runner.invoke(
        app,
        [
            "train", name, "--output", str(out), "--data", str(data), "--group-size", "3", "--batch-size", "5",
            "--epochs", "2.5", "--query-prompt", "Q: ", "--document-prompt", "", "--cross-device-negatives",
            "--same-dataset-batches", "--resume", "last",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((cfg,),) = calls
    parts = (cfg.model, cfg.data, cfg.loss, cfg.training)
    expected = {
        "output_dir": str(out),
        "train_data": [str(data)],
        "train_group_size": 3,
        "per_device_train_batch_size": 5,
        "num_train_epochs": 2.5,
        "query_instruction": "Q: ",
        "passage_instruction": "",
        "negatives_cross_device": True,
        "same_dataset_within_batch": True,
        "resume_from_checkpoint": "last",
    }
    assert {field: field_value(parts, field) for field in expected} == expected


def test_retromae_aliases_reach_their_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = capture(monkeypatch, "trivec.training.retromae.train.train_retromae")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "a text"}\n', encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train", "retromae", "--model", "all-MiniLM-L6-v2", "--corpus", str(corpus), "--output", str(out),
            "--batch-size", "3", "--epochs", "0.5", "--resume", "last",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (parts,) = calls  # the recipe and the TrainingArguments
    expected = {
        "output_dir": str(out),
        "corpus": [str(corpus)],
        "per_device_train_batch_size": 3,
        "num_train_epochs": 0.5,
        "resume_from_checkpoint": "last",
    }
    assert {field: field_value(parts, field) for field in expected} == expected


def test_reranker_aliases_reach_their_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = capture(monkeypatch, "trivec.training.reranker.train.train_reranker")
    out, data = tmp_path / "run", tmp_path / "rows.jsonl"
    result = runner.invoke(
        app,
        [
            "train", "reranker", "-m", "some-reranker", "-d", str(data), "--output", str(out),
            "--instruction", "Q: ", "--cpu", "--head-lr", "0.01", "--lr", "0.001", "--resume", "last",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((config,),) = calls
    assert (config.output_dir, config.data) == (str(out), [str(data)])
    assert (config.query_instruction, config.use_cpu) == ("Q: ", True)
    assert (config.head_learning_rate, config.learning_rate) == (0.01, 0.001)
    assert config.resume_from_checkpoint == "last"
    default = RerankerConfig.__dataclass_fields__["batch_size"].default
    assert config.batch_size == default  # not given: RerankerConfig's default


def test_reranker_token_cache_flag_reaches_its_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = capture(monkeypatch, "trivec.training.reranker.train.train_reranker")
    base = ["train", "reranker", "-m", "r", "-d", str(tmp_path / "rows.jsonl"), "-o", str(tmp_path / "run")]
    for flag, expected in (([], True), (["--no-token-cache"], False), (["--token-cache"], True)):
        result = runner.invoke(app, [*base, *flag])
        assert result.exit_code == 0, result.output
        assert calls[-1][0].token_cache is expected
