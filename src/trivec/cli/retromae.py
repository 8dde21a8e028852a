"""`trivec train retromae`: RetroMAE (or plain MLM) pre-training from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trivec.cli.common import clean_errors, command_group, fail
from trivec.training.recipe_yaml import parse_assignments

YAML_SUFFIXES = (".yaml", ".yml")


def register(app: typer.Typer) -> None:
    """Add `train retromae` to the `train` group of `app` (shared with `train contrastive`, whichever
    registers first creates it)."""

    group = command_group(app, "train")

    @group.command("retromae")
    @clean_errors
    def retromae(
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Output directory.")] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", help="Masked LM to continue from (dir, hub id, 'default')."),
        ] = None,
        config: Annotated[
            list[Path] | None,
            typer.Option(
                "--config",
                "-c",
                help="NEW_ENCODER.json (architecture of a new encoder) and/or recipe.yaml (arguments); repeatable.",
            ),
        ] = None,
        tokenizer: Annotated[
            str | None, typer.Option(help="Tokenizer (default: the model's; required for a new encoder).")
        ] = None,
        corpus: Annotated[
            list[str] | None, typer.Option(help="Text files, comma-separated or repeated (.jsonl / .txt).")
        ] = None,
        objective: Annotated[
            str | None, typer.Option(help="'retromae' (default) or 'mlm' (encoder MLM only, a baseline).")
        ] = None,
        max_seq_length: Annotated[int | None, typer.Option(help="Tokens per text (default 512).")] = None,
        encoder_mlm_probability: Annotated[
            float | None, typer.Option(help="Encoder whole-word mask ratio (default 0.3).")
        ] = None,
        decoder_mlm_probability: Annotated[
            float | None, typer.Option(help="Decoder per-position mask ratio (default 0.5).")
        ] = None,
        batch_size: Annotated[int | None, typer.Option(help="Texts per device batch.")] = None,
        learning_rate: Annotated[
            float | None, typer.Option(help="Peak learning rate (default 2e-5).")
        ] = None,
        epochs: Annotated[float | None, typer.Option(help="Epochs (default 2).")] = None,
        max_steps: Annotated[
            int | None, typer.Option(help="Stop after this many steps (overrides epochs).")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
        resume: Annotated[
            str | None, typer.Option(help="Checkpoint directory to resume from, or 'last'.")
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="Any other argument (TrainingArguments too): KEY=VALUE; repeatable."),
        ] = None,
    ) -> None:
        """Pre-train an encoder with RetroMAE (masked encoder + enhanced one-layer decoder).

        Writes OUTPUT/encoder_model (weights + tokenizer; `trivec train contrastive --model` starts from it),
        OUTPUT/log.csv and TensorBoard logs under OUTPUT/runs.
        """
        from trivec.errors import InputError
        from trivec.training.retromae.arguments import build_arguments, read_yaml
        from trivec.training.retromae.train import train_retromae

        yaml_values: dict[str, Any] = {}
        encoder_config: str | None = None
        for path in config or []:
            if path.suffix.lower() in YAML_SUFFIXES:
                yaml_values.update(read_yaml(path))
            elif path.suffix.lower() == ".json":
                if encoder_config is not None:
                    raise fail("give one encoder config (.json), not several")
                encoder_config = str(path)
            else:
                raise fail(f"--config {path}: expected a .json encoder config or a .yaml recipe")
        overrides: dict[str, Any] = parse_assignments(set_)
        overrides.update(
            {
                "output_dir": str(output) if output is not None else None,
                "model": model,
                "config": encoder_config,
                "tokenizer": tokenizer,
                "corpus": [p for item in corpus for p in item.split(",") if p] if corpus else None,
                "objective": objective,
                "max_seq_length": max_seq_length,
                "encoder_mlm_probability": encoder_mlm_probability,
                "decoder_mlm_probability": decoder_mlm_probability,
                "per_device_train_batch_size": batch_size,
                "learning_rate": learning_rate,
                "num_train_epochs": epochs,
                "max_steps": max_steps,
                "seed": seed,
            }
        )
        if overrides.get("model") is not None and overrides.get("config") is None:
            yaml_values.pop("config", None)  # --model on the command line replaces a YAML encoder config
        if overrides.get("config") is not None and overrides.get("model") is None:
            yaml_values.pop("model", None)
        yaml_files = [str(p) for p in config or [] if p.suffix.lower() in YAML_SUFFIXES]
        source = ", ".join(yaml_files) or "arguments"
        recipe, training = build_arguments(yaml_values, overrides, source=source)
        checkpoint: str | bool | None = resume
        if resume == "last":
            if not any(Path(str(training.output_dir)).glob("checkpoint-*")):
                raise InputError(f"--resume last: no checkpoint-* folder in {training.output_dir}")
            checkpoint = True
        training.resume_from_checkpoint = checkpoint  # type: ignore[assignment]
        encoder_dir = train_retromae(recipe, training)
        typer.echo(f"encoder saved to {encoder_dir}", err=True)
