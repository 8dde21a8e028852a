"""Recipe values from YAML and `--set`: YAML 1.2 scalars, the same for every training command; the options' help
texts taken from the settings they set."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from trivec.cli import app
from trivec.cli.common import field_help
from trivec.errors import InputError
from trivec.training.arguments import DataArguments, LossArguments, ModelArguments, build_config, read_yaml
from trivec.training.recipe_yaml import (
    current_trainer_names,
    gather_recipe_values,
    load_yaml,
    parse_assignments,
)
from trivec.training.reranker import RerankerConfig
from trivec.training.retromae.arguments import read_yaml as read_retromae_yaml


def test_yaml_12_scalars() -> None:
    assert load_yaml("1e-5") == 1e-5 and isinstance(load_yaml("2E+3"), float)
    assert load_yaml("no") == "no" and load_yaml("yes") == "yes" and load_yaml("off") == "off"
    assert load_yaml("true") is True and load_yaml("False") is False
    assert load_yaml("[1, 2.5, x]") == [1, 2.5, "x"]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_any_float_given_with_set_comes_back(value: float) -> None:
    assert parse_assignments([f"learning_rate={value!r}"]) == {"learning_rate": value}


def test_set_flags_reach_the_recipe_as_numbers(tmp_path: Path) -> None:
    """`--set temperature=2e-2` was read as the string "2e-2" and failed in validation with a TypeError."""
    overrides = parse_assignments(["learning_rate=1e-5", "temperature=2e-2", "save_strategy=no"])
    config = build_config({"train_data": ["x.jsonl"]}, {**overrides, "output_dir": str(tmp_path)})
    assert config.training.learning_rate == 1e-5 and config.loss.temperature == 0.02
    assert config.training.save_strategy == "no"


def test_yaml_files_read_alike_for_every_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("loss:\n  temperature: 5e-2\ntraining:\n  save_strategy: no\n", encoding="utf-8")
    assert read_yaml(recipe) == {"temperature": 0.05, "save_strategy": "no"}
    flat = tmp_path / "flat.yaml"
    flat.write_text("learning_rate: 1e-4\nsave_strategy: no\n", encoding="utf-8")
    assert read_retromae_yaml(flat) == {"learning_rate": 1e-4, "save_strategy": "no"}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["learning_rate"], "expects KEY=VALUE"),
        (["=3"], "expects KEY=VALUE"),
        (["x=[1"], "--set x: cannot read"),
    ],
)
def test_bad_set_flags_are_named(items: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_assignments(items)


def test_gathered_values_keep_a_set_flag_when_its_option_is_not_given(tmp_path: Path) -> None:
    """`--set temperature=0.1` without `--temperature` was lost: the option's None replaced it."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("loss:\n  temperature: 5e-2\ndata:\n  query_max_len: 16\n", encoding="utf-8")
    options = {"temperature": None, "query_max_len": 24, "passage_max_len": None}
    values = gather_recipe_values([recipe], read_yaml, ["temperature=0.1"], options)
    assert values.yaml == {"temperature": 0.05, "query_max_len": 16}
    assert values.overrides == {"temperature": 0.1, "query_max_len": 24}
    assert values.merged() == {"temperature": 0.1, "query_max_len": 24}
    assert values.source == str(recipe)
    assert gather_recipe_values([], read_yaml, None, {}).source == "arguments"


def test_options_take_their_help_from_the_settings() -> None:
    assert (
        field_help(DataArguments, "train_group_size")
        == "Passages per query: 1 positive + G-1 negatives (default 8)."
    )
    assert field_help(ModelArguments, "train_parts").endswith("the others stay frozen (default all).")
    assert (
        field_help(LossArguments, "in_batch_negatives")
        == "Other queries' passages are negatives too (else own group only)."
    )
    assert (
        field_help(RerankerConfig, "model") == RerankerConfig.__dataclass_fields__["model"].metadata["help"]
    )
    shown = CliRunner().invoke(app, ["train", "reranker", "--help"], env={"COLUMNS": "200"}).output
    assert "Queries (groups) per device step (default 4)." in shown


def test_renamed_trainer_fields_reach_the_installed_name_without_a_warning(tmp_path: Path) -> None:
    import warnings
    from dataclasses import fields

    from transformers import TrainingArguments

    values = {"output_dir": str(tmp_path), "gradient_checkpointing": True, "report_to": []}
    current = current_trainer_names(values)
    if "activation_checkpointing" not in {f.name for f in fields(TrainingArguments)}:
        assert current == values  # an older transformers reads the old name
        return
    assert "gradient_checkpointing" not in current and current["activation_checkpointing"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        arguments = TrainingArguments(**current)
    assert arguments.gradient_checkpointing is True  # the old name still reads the value
    # both names given: left as given (transformers takes the new one)
    both = {**values, "activation_checkpointing": False}
    assert current_trainer_names(both) == both
