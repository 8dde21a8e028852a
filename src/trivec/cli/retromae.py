"""`trivec train retromae`: RetroMAE (or plain MLM) pre-training from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import (
    TRAINER_PANEL,
    ResumeOption,
    SetOption,
    clean_errors,
    comma_list,
    command_group,
    fail,
    field_help,
    given_fields,
    trainer_help,
)
from trivec.training.recipe_yaml import gather_recipe_values
from trivec.training.retromae.arguments import TRAINING_DEFAULTS as RETROMAE_DEFAULTS
from trivec.training.retromae.arguments import RetroMAEArguments

YAML_SUFFIXES = (".yaml", ".yml")


def register(app: typer.Typer) -> None:
    """Add `train retromae` to the `train` group of `app` (shared with `train contrastive`, whichever
    registers first creates it)."""

    group = command_group(app, "train")

    @group.command("retromae")
    @clean_errors
    def retromae(
        output_dir: Annotated[
            Path | None, typer.Option("--output-dir", "--output", "-o", help="Output directory.")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", help=field_help(RetroMAEArguments, "model")),
        ] = None,
        config_files: Annotated[
            list[Path] | None,
            typer.Option(
                "--config",
                "-c",
                help="NEW_ENCODER.json (architecture of a new encoder) and/or recipe.yaml (arguments); repeatable.",
            ),
        ] = None,
        tokenizer: Annotated[
            str | None, typer.Option(help=field_help(RetroMAEArguments, "tokenizer"))
        ] = None,
        corpus: Annotated[
            list[str] | None,
            typer.Option(help=f"{field_help(RetroMAEArguments, 'corpus')} Comma-separated or repeated."),
        ] = None,
        objective: Annotated[
            str | None, typer.Option(help=field_help(RetroMAEArguments, "objective"))
        ] = None,
        max_seq_length: Annotated[
            int | None, typer.Option(help=field_help(RetroMAEArguments, "max_seq_length"))
        ] = None,
        encoder_mlm_probability: Annotated[
            float | None, typer.Option(help=field_help(RetroMAEArguments, "encoder_mlm_probability"))
        ] = None,
        decoder_mlm_probability: Annotated[
            float | None, typer.Option(help=field_help(RetroMAEArguments, "decoder_mlm_probability"))
        ] = None,
        resume_from_checkpoint: ResumeOption = None,
        set_: SetOption = None,
        per_device_train_batch_size: Annotated[
            int | None,
            typer.Option(
                "--per-device-train-batch-size",
                "--batch-size",
                help=trainer_help("Texts per device batch", RETROMAE_DEFAULTS, "per_device_train_batch_size"),
                rich_help_panel=TRAINER_PANEL,
            ),
        ] = None,
        learning_rate: Annotated[
            float | None,
            typer.Option(
                help=trainer_help("Peak learning rate", RETROMAE_DEFAULTS, "learning_rate"),
                rich_help_panel=TRAINER_PANEL,
            ),
        ] = None,
        num_train_epochs: Annotated[
            float | None,
            typer.Option(
                "--num-train-epochs",
                "--epochs",
                help=trainer_help("Epochs", RETROMAE_DEFAULTS, "num_train_epochs"),
                rich_help_panel=TRAINER_PANEL,
            ),
        ] = None,
        max_steps: Annotated[
            int | None,
            typer.Option(
                help="Stop after this many steps (overrides epochs).", rich_help_panel=TRAINER_PANEL
            ),
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option(
                help=trainer_help("Random seed", RETROMAE_DEFAULTS, "seed"), rich_help_panel=TRAINER_PANEL
            ),
        ] = None,
    ) -> None:
        """Pre-train an encoder with RetroMAE (masked encoder + enhanced one-layer decoder).

        Writes OUTPUT/encoder_model (weights + tokenizer; `trivec train contrastive --model` starts from it),
        OUTPUT/log.csv and TensorBoard logs under OUTPUT/runs.
        """
        # the parameters (nothing else is defined yet), named after the fields they set
        given = {**locals(), "corpus": comma_list(corpus)}
        from transformers import TrainingArguments

        from trivec.training.retromae.arguments import build_arguments, read_yaml
        from trivec.training.retromae.train import train_retromae

        yaml_files = [p for p in config_files or [] if p.suffix.lower() in YAML_SUFFIXES]
        encoder_configs = [p for p in config_files or [] if p.suffix.lower() == ".json"]
        for path in config_files or []:
            if path not in yaml_files and path not in encoder_configs:
                raise fail(f"--config {path}: expected a .json encoder config or a .yaml recipe")
        if len(encoder_configs) > 1:
            raise fail("give one encoder config (.json), not several")
        options = given_fields(given, RetroMAEArguments, TrainingArguments)
        if encoder_configs:  # --config takes the recipes too: the encoder config is its .json file
            options["config"] = str(encoder_configs[0])
        values = gather_recipe_values(yaml_files, read_yaml, set_, options)
        # a model on the command line replaces an encoder config of the YAML, and the other way round
        if "model" in values.overrides and "config" not in values.overrides:
            values.yaml.pop("config", None)
        if "config" in values.overrides and "model" not in values.overrides:
            values.yaml.pop("model", None)
        recipe, training = build_arguments(values.yaml, values.overrides, source=values.source)
        encoder_dir = train_retromae(recipe, training)
        typer.echo(f"encoder saved to {encoder_dir}", err=True)
