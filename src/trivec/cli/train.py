"""`trivec train contrastive` / `m3`, `trivec data pairs`, `trivec mine`: fine-tuning and its data tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import (
    TRAINER_PANEL,
    DocumentPromptOption,
    QueryPromptOption,
    ResumeOption,
    SetOption,
    clean_errors,
    comma_list,
    command_group,
    field_help,
    given_fields,
    prompt_overrides,
    trainer_help,
)
from trivec.training.arguments import (
    DATACLASSES,
    TRAINING_DEFAULTS,
    DataArguments,
    LossArguments,
    ModelArguments,
)
from trivec.training.recipe_yaml import gather_recipe_values

# `trivec train contrastive / m3 --help` lists the options by what they set (the run's own ones first)
MODEL, DATA, LOSS, TRAINER = "Model", "Data", "Loss", TRAINER_PANEL


def add_train_command(train: typer.Typer, name: str, help_text: str, m3: bool = False) -> None:
    """Register `trivec train NAME`: the fine-tuning options, YAML recipes and launch shared by
    `contrastive` and `m3` (which starts from `M3_DEFAULTS`: unified fine-tuning with self-distillation)."""

    @train.command(name, help=help_text)
    @clean_errors
    def command(
        output_dir: Annotated[
            Path | None, typer.Option("--output-dir", "--output", "-o", help="Output directory.")
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", help=field_help(ModelArguments, "model", with_default=False)),
        ] = None,
        train_data: Annotated[
            list[str] | None,
            typer.Option(
                "--train-data", "--data", "-d", help="FlagEmbedding JSONL files, comma-separated or repeated."
            ),
        ] = None,
        config_files: Annotated[
            list[Path] | None, typer.Option("--config", "-c", help="YAML recipe (repeatable; later wins).")
        ] = None,
        resume_from_checkpoint: ResumeOption = None,
        set_: SetOption = None,
        precision: Annotated[
            str | None, typer.Option(help=field_help(ModelArguments, "precision"), rich_help_panel=MODEL)
        ] = None,
        train_parts: Annotated[
            str | None, typer.Option(help=field_help(ModelArguments, "train_parts"), rich_help_panel=MODEL)
        ] = None,
        heads_learning_rate: Annotated[
            float | None,
            typer.Option(help=field_help(ModelArguments, "heads_learning_rate"), rich_help_panel=MODEL),
        ] = None,
        colbert_dim: Annotated[
            int | None, typer.Option(help=field_help(ModelArguments, "colbert_dim"), rich_help_panel=MODEL)
        ] = None,
        train_group_size: Annotated[
            int | None,
            typer.Option(
                "--train-group-size",
                "--group-size",
                help=field_help(DataArguments, "train_group_size"),
                rich_help_panel=DATA,
            ),
        ] = None,
        query_max_len: Annotated[
            int | None, typer.Option(help=field_help(DataArguments, "query_max_len"), rich_help_panel=DATA)
        ] = None,
        passage_max_len: Annotated[
            int | None, typer.Option(help=field_help(DataArguments, "passage_max_len"), rich_help_panel=DATA)
        ] = None,
        query_instruction: Annotated[
            str | None,
            typer.Option(
                "--query-instruction",
                "--query-prompt",
                help=field_help(DataArguments, "query_instruction"),
                rich_help_panel=DATA,
            ),
        ] = None,
        passage_instruction: Annotated[
            str | None,
            typer.Option(
                "--passage-instruction",
                "--document-prompt",
                help=field_help(DataArguments, "passage_instruction"),
                rich_help_panel=DATA,
            ),
        ] = None,
        knowledge_distillation: Annotated[
            bool | None,
            typer.Option(
                "--knowledge-distillation",
                help=field_help(DataArguments, "knowledge_distillation"),
                rich_help_panel=DATA,
            ),
        ] = None,
        same_dataset_within_batch: Annotated[
            bool | None,
            typer.Option(
                "--same-dataset-within-batch",
                "--same-dataset-batches",
                help=field_help(DataArguments, "same_dataset_within_batch"),
                rich_help_panel=DATA,
            ),
        ] = None,
        temperature: Annotated[
            float | None, typer.Option(help=field_help(LossArguments, "temperature"), rich_help_panel=LOSS)
        ] = None,
        in_batch_negatives: Annotated[
            bool | None,
            typer.Option(
                "--in-batch-negatives/--no-in-batch-negatives",
                help=field_help(LossArguments, "in_batch_negatives"),
                rich_help_panel=LOSS,
            ),
        ] = None,
        negatives_cross_device: Annotated[
            bool | None,
            typer.Option(
                "--negatives-cross-device",
                "--cross-device-negatives",
                help=field_help(LossArguments, "negatives_cross_device"),
                rich_help_panel=LOSS,
            ),
        ] = None,
        kd_loss_type: Annotated[
            str | None,
            typer.Option(
                help="kl_div or m3_kd_loss (default: m3_kd_loss for m3, else kl_div).", rich_help_panel=LOSS
            ),
        ] = None,
        sub_batch_size: Annotated[
            int | None, typer.Option(help=field_help(LossArguments, "sub_batch_size"), rich_help_panel=LOSS)
        ] = None,
        per_device_train_batch_size: Annotated[
            int | None,
            typer.Option(
                "--per-device-train-batch-size",
                "--batch-size",
                help=trainer_help(
                    "Queries per device batch", TRAINING_DEFAULTS, "per_device_train_batch_size"
                ),
                rich_help_panel=TRAINER,
            ),
        ] = None,
        learning_rate: Annotated[
            float | None,
            typer.Option(
                help=trainer_help("Peak learning rate", TRAINING_DEFAULTS, "learning_rate"),
                rich_help_panel=TRAINER,
            ),
        ] = None,
        num_train_epochs: Annotated[
            float | None,
            typer.Option(
                "--num-train-epochs",
                "--epochs",
                help=trainer_help("Epochs", TRAINING_DEFAULTS, "num_train_epochs"),
                rich_help_panel=TRAINER,
            ),
        ] = None,
        max_steps: Annotated[
            int | None, typer.Option(help="Stop after this many optimizer steps.", rich_help_panel=TRAINER)
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option(
                help=trainer_help("Random seed", TRAINING_DEFAULTS, "seed"), rich_help_panel=TRAINER
            ),
        ] = None,
        gradient_checkpointing: Annotated[
            bool | None,
            typer.Option(
                "--gradient-checkpointing", help="Recompute activations in backward.", rich_help_panel=TRAINER
            ),
        ] = None,
    ) -> None:
        # the parameters (nothing else is defined yet), named after the fields they set
        given = {**locals(), "train_data": comma_list(train_data)}
        from transformers import TrainingArguments

        from trivec.errors import InputError
        from trivec.training.arguments import M3_DEFAULTS, build_config, read_yaml
        from trivec.training.train import train_contrastive

        options = given_fields(given, *DATACLASSES, TrainingArguments)
        values = gather_recipe_values(config_files or [], read_yaml, set_, options)
        if m3 and values.merged().get("unified_finetuning", True) is not True:
            raise InputError(
                "`trivec train m3` is unified fine-tuning (unified_finetuning: false given); "
                "for dense-only training use `trivec train contrastive`"
            )
        cfg = build_config(
            values.yaml, values.overrides, source=values.source, defaults=M3_DEFAULTS if m3 else None
        )
        out = train_contrastive(cfg)
        typer.echo(f"model saved to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add `train contrastive`, `train m3`, `data pairs`, `data decontaminate` and `mine` to `app`."""

    train = command_group(app, "train")
    data_group = command_group(app, "data")

    add_train_command(
        train,
        "contrastive",
        help_text=(
            "Contrastive fine-tuning (InfoNCE with hard and in-batch negatives, optional teacher distillation)."
            "\n\nQueries get the model's 'query' prompt and passages its 'document' prompt unless "
            "--query-instruction / --passage-instruction say otherwise; the output model keeps the prompts it was "
            "trained with.\n\nWrites the model in the BAAI layout to OUTPUT (loadable by trivec and sentence-transformers), "
            "checkpoints OUTPUT/checkpoint-*, OUTPUT/log.csv and TensorBoard logs under OUTPUT/runs. "
            "Launch with `torchrun --nproc_per_node N $(which trivec) train contrastive ...` for several "
            "processes."
        ),
    )
    add_train_command(
        train,
        "m3",
        help_text=(
            "BGE-M3 unified fine-tuning: dense, sparse and ColBERT scores with self-distillation "
            "(defaults: unified_finetuning, use_self_distill, kd_loss_type m3_kd_loss, temperature 0.02)."
            "\n\nA model without sparse/ColBERT heads gets new ones (--colbert-dim for a ColBERT head smaller "
            "than the hidden size): a dense-only BGE or MiniLM model becomes an M3 model. --train-parts heads "
            "trains the new heads on a frozen encoder. Same options, YAML recipes and launch as "
            "`trivec train contrastive`; the output loads with `Embedder.from_pretrained(OUTPUT)`."
        ),
        m3=True,
    )

    @data_group.command("pairs")
    @clean_errors
    def pairs(
        corpus: Annotated[Path, typer.Option("--corpus", help="JSONL corpus with 'title' and 'text'.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="FlagEmbedding JSONL to write.")],
        filter_model: Annotated[
            str | None, typer.Option(help="Keep only pairs this model scores ≥ --min-score.")
        ] = None,
        min_score: Annotated[float | None, typer.Option(help="Dense score threshold (cosine).")] = None,
        query_field: Annotated[str, typer.Option(help="Field used as the query.")] = "title",
        passage_field: Annotated[str, typer.Option(help="Field used as the positive.")] = "text",
        query_prompt: QueryPromptOption = None,
        document_prompt: DocumentPromptOption = None,
        where: Annotated[
            list[str] | None, typer.Option(help="Keep rows with FIELD=VALUE (e.g. split=train); repeatable.")
        ] = None,
        at_least: Annotated[
            list[str] | None, typer.Option(help="Keep rows with FIELD ≥ NUMBER (e.g. score=4); repeatable.")
        ] = None,
    ) -> None:
        """(title, body) pairs from a corpus — BGE's unlabeled stage-2 data — optionally score-filtered.

        Also turns labelled pair data into training pairs, e.g. STS:
        `--query-field sentence1 --passage-field sentence2 --where split=train --at-least score=4`.
        """
        from trivec.training.pairs import build_pairs, parse_filters

        embedder = None
        if filter_model is not None:
            from trivec.inference import Embedder

            embedder = Embedder.from_pretrained(
                filter_model, prompts=prompt_overrides(query_prompt, document_prompt)
            )
        stats = build_pairs(
            corpus,
            output,
            filter_model=embedder,
            min_score=min_score,
            query_field=query_field,
            passage_field=passage_field,
            where=parse_filters(where, numeric=False, option="--where"),
            at_least=parse_filters(at_least, numeric=True, option="--at-least"),
        )
        typer.echo(f"{stats.summary()} → {output}", err=True)

    @data_group.command("decontaminate")
    @clean_errors
    def decontaminate_command(
        data: Annotated[Path, typer.Option("--data", "-d", help="FlagEmbedding JSONL training rows.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="The rows without evaluation pairs.")],
        against: Annotated[
            list[Path],
            typer.Option(help="Evaluation pairs.jsonl (sentence1, sentence2; non-train rows); repeatable."),
        ],
    ) -> None:
        """Drop training positives that are evaluation pairs (either order), e.g. STS-B train vs SemEval STS."""
        from trivec.training.decontaminate import decontaminate

        stats = decontaminate(data, output, against)
        typer.echo(f"{stats.summary()} → {output}", err=True)

    @app.command("mine")
    @clean_errors
    def mine(
        data: Annotated[Path, typer.Option("--data", "-d", help="FlagEmbedding JSONL (query, pos[, neg]).")],
        output: Annotated[Path, typer.Option("--output", "-o", help="The same rows with mined 'neg'.")],
        model: Annotated[
            str, typer.Option("--model", "-m", help="Retriever (dir, hub id, 'default').")
        ] = "default",
        corpus: Annotated[
            Path | None, typer.Option(help="Candidate JSONL ({'text'}); default: all pos+neg of --data.")
        ] = None,
        range_: Annotated[
            str, typer.Option("--range", help="Ranks START-END (0-based, END excluded) to sample from.")
        ] = "10-210",
        negatives: Annotated[int, typer.Option(help="Negatives per row.")] = 15,
        margin: Annotated[
            float | None,
            typer.Option(help="Keep candidates scoring ≤ (lowest positive score − MARGIN) only."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Random seed of the sampling.")] = 42,
        query_prompt: QueryPromptOption = None,
        document_prompt: DocumentPromptOption = None,
        max_length: Annotated[int, typer.Option(help="Truncate texts to this many tokens.")] = 512,
        fill: Annotated[
            bool, typer.Option("--fill/--no-fill", help="Top up short rows with random corpus texts.")
        ] = True,
        with_title: Annotated[bool, typer.Option(help="Corpus text = title + text.")] = False,
        retriever: Annotated[
            str,
            typer.Option(
                help="dense (exact search with --model), bm25 (no model; --language) or hybrid (both fused)."
            ),
        ] = "dense",
        language: Annotated[
            str | None, typer.Option(help="BM25 tokeniser language (default: the rows' 'lang', else en).")
        ] = None,
        dtype: Annotated[
            str | None,
            typer.Option(help="Encoder precision for dense mining: float32 (default) or bfloat16."),
        ] = None,
    ) -> None:
        """Mine hard negatives from a rank window of a dense, BM25 or hybrid search (FlagEmbedding hn_mine,
        seeded)."""
        from trivec.inference import Embedder
        from trivec.io import check_output_path
        from trivec.training.mining import mine_hard_negatives, parse_range

        window = parse_range(range_)
        check_output_path(output, inputs=[data, corpus])  # before the model loads
        embedder = (
            Embedder.from_pretrained(
                model, dtype=dtype, prompts=prompt_overrides(query_prompt, document_prompt)
            )
            if retriever in ("dense", "hybrid")
            else None
        )
        stats = mine_hard_negatives(
            embedder,
            data,
            output,
            corpus=corpus,
            rank_range=window,
            negatives=negatives,
            margin=margin,
            seed=seed,
            max_length=max_length,
            fill=fill,
            with_title=with_title,
            retriever=retriever,
            language=language,
        )
        typer.echo(f"{stats.summary()} → {output}", err=True)
