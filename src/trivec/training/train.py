"""Contrastive (and M3 unified) fine-tuning: model, data and trainer built from a `ContrastiveConfig`; the run
itself (resume, train, save in the BAAI layout through the trainer) is `trivec.training.runner`'s."""

from __future__ import annotations

import logging
from pathlib import Path

from trivec.errors import InputError
from trivec.models import M3Model
from trivec.models.lora import add_lora
from trivec.models.prompts import DOCUMENT, QUERY, select_prompt
from trivec.training.arguments import ContrastiveConfig, DataArguments
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset
from trivec.training.modeling import ContrastiveModel, set_dropout
from trivec.training.runner import run_training
from trivec.training.sparse_init import fit_sparse_head_to_idf
from trivec.training.trainer import ContrastiveTrainer

logger = logging.getLogger(__name__)


def load_encoder(config: ContrastiveConfig) -> M3Model:
    """The model to fine-tune; unified (M3) training creates missing heads (`heads="init"`)."""
    args = config.model
    encoder = M3Model.from_pretrained(
        args.model,
        heads="init" if config.loss.unified_finetuning else "auto",
        pooling=args.pooling,  # type: ignore[arg-type]
        normalize=args.normalize,
        colbert_dim=args.colbert_dim,
        seed=config.training.seed,
    )
    if args.dropout is not None:
        set_dropout(encoder.backbone, args.dropout)
    if args.lora_rank is not None:
        encoder.backbone = add_lora(  # type: ignore[assignment]  # a PeftModel forwards the backbone's API
            encoder.backbone, args.lora_rank, args.lora_alpha, args.lora_dropout, args.lora_target_modules
        )
    limit = encoder.position_limit
    for name in ("query_max_len", "passage_max_len"):
        if getattr(config.data, name) > limit:
            raise InputError(f"{name} {getattr(config.data, name)} exceeds the model's {limit} tokens")
    return encoder.train()


def build_trainer(config: ContrastiveConfig, encoder: M3Model | None = None) -> ContrastiveTrainer:
    """Everything the run needs, data validated, wired into a `ContrastiveTrainer` (no training yet)."""
    training = config.training
    encoder = encoder if encoder is not None else load_encoder(config)
    apply_model_prompts(config.data, encoder)
    dataset = ContrastiveDataset(
        config.data,
        batch_size=training.per_device_train_batch_size,
        in_batch_negatives=config.loss.in_batch_negatives,
        world_size=training.world_size,
        seed=training.data_seed if training.data_seed is not None else training.seed,
        drop_last=training.dataloader_drop_last,
        tokenizer=encoder.tokenizer,
    )
    logger.info("training data: %s (%d global batches per epoch)", dataset.describe(), dataset.num_batches)
    if config.model.sparse_init in ("idf", "idf_per_file"):
        if encoder.sparse_head is None:
            raise InputError(
                f"sparse_init {config.model.sparse_init} needs a sparse head: set loss.unified_finetuning true"
            )
        corpora = [[t for ex in f.examples for t in (*ex.pos, *ex.neg)] for f in dataset.files]
        stats = fit_sparse_head_to_idf(
            encoder,
            corpora,
            max_length=config.data.passage_max_len,
            per_corpus=config.model.sparse_init == "idf_per_file",
        )
        logger.info(
            "sparse head fit to the IDF of %d training passages (%s; R² %.3f over %d tokens)",
            stats["passages"],
            "IDF per file" if config.model.sparse_init == "idf_per_file" else "one IDF",
            stats["r2"],
            stats["tokens"],
        )
    collator = ContrastiveCollator(
        encoder.tokenizer,
        query_max_len=config.data.query_max_len,
        passage_max_len=config.data.passage_max_len,
        pad_to_multiple_of=config.data.pad_to_multiple_of,
        fold_capitals=encoder.fold_capitals,
    )
    if config.data.token_cache:
        collator.use_token_cache(dataset)
    model = ContrastiveModel(encoder, config.loss, train_parts=config.model.parts())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "training %s (%d of %d parameters; the rest frozen)", ", ".join(model.train_parts), trainable, total
    )
    return ContrastiveTrainer(
        model=model,
        args=training,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=encoder.tokenizer,
        sub_batch_size=config.loss.sub_batch_size,
        heads_learning_rate=config.model.heads_learning_rate,
    )


def train_contrastive(config: ContrastiveConfig) -> Path:
    """Train and save the final model into `output_dir` (files moved into place only once complete)."""
    return run_training(
        lambda: build_trainer_saving_prompts(config),
        output_dir=str(config.training.output_dir),
        resume=config.training.resume_from_checkpoint,
        recipe=config.to_dict,
    )


def build_trainer_saving_prompts(config: ContrastiveConfig) -> ContrastiveTrainer:
    """`build_trainer`, the model's prompts set to those it trains with (saved with the model)."""
    trainer = build_trainer(config)
    model = trainer.model
    assert isinstance(model, ContrastiveModel)
    model.encoder.prompts = trained_prompts(config, model.encoder.prompts)
    return trainer


def apply_model_prompts(data: DataArguments, encoder: M3Model) -> None:
    """Instructions not given (None) default to the model's prompts: `query_instruction` to its `query`
    prompt, `passage_instruction` to its `document` prompt ("" given = train without)."""
    if data.query_instruction is None:
        data.query_instruction = select_prompt(encoder.prompts, None, QUERY) or None
    if data.passage_instruction is None:
        data.passage_instruction = select_prompt(encoder.prompts, None, DOCUMENT) or None


def trained_prompts(config: ContrastiveConfig, prompts: dict[str, str]) -> dict[str, str]:
    """The model's prompts after training: its `query` / `document` prompts become the run-wide query /
    passage instructions it was trained with — unless files set their own (no one prompt says what the
    model saw) or `query_instruction_format` does not just put the instruction first."""
    data = config.data
    out = dict(prompts)
    if data.query_instruction_format != "{}{}":
        return out
    for role, value, key in (
        (QUERY, data.query_instruction, "query_instruction"),
        (DOCUMENT, data.passage_instruction, "passage_instruction"),
    ):
        per_file = any(isinstance(item, dict) and item.get(key) for item in data.train_data)
        if value is not None and not per_file:
            out[role] = value
    return out
