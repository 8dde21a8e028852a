"""Build the masked LM, the corpus and the collator from the arguments; `trivec.training.runner` runs the
Trainer and saves `encoder_model/` and the recipe once training is complete."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
)

from trivec.errors import CheckpointError, InputError
from trivec.models.checkpoint import quiet_loading, resolve_model_path
from trivec.models.cross_encoder import position_limit
from trivec.training.retromae.arguments import RetroMAEArguments
from trivec.training.retromae.collator import RetroMAECollator
from trivec.training.retromae.data import TextCorpus
from trivec.training.retromae.modeling import ENCODER_DIR, RetroMAEModel
from trivec.training.retromae.trainer import RetroMAETrainer
from trivec.training.runner import run_training

logger = logging.getLogger(__name__)
SPECIAL_CONFIG_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    directory = resolve_model_path(name_or_path)
    try:
        with quiet_loading():
            return AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"cannot load a tokenizer from {directory}: {exc}") from exc


def new_encoder_config(path: str | Path, tokenizer: PreTrainedTokenizerBase) -> Any:
    """An architecture from a JSON config; vocabulary size and special ids default to the tokenizer's."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(values, dict) or not isinstance(values.get("model_type"), str):
        raise InputError(f'{path}: expected a JSON object with a \'model_type\' (e.g. "bert", "xlm-roberta")')
    values.setdefault("vocab_size", len(tokenizer))
    for name in SPECIAL_CONFIG_FIELDS:
        token_id = getattr(tokenizer, name, None)
        if token_id is not None:
            values.setdefault(name, token_id)
    model_type = values.pop("model_type")
    try:
        config = AutoConfig.for_model(model_type, **values)
    except (KeyError, ValueError) as exc:
        raise InputError(f"{path}: unknown or invalid model config ({exc})") from exc
    if config.vocab_size < len(tokenizer):
        raise InputError(
            f"{path}: vocab_size {config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens"
        )
    return config


def load_masked_lm(recipe: RetroMAEArguments) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The masked LM to pre-train: continued from `model`, or new from `config` (random weights)."""
    tokenizer = load_tokenizer(recipe.tokenizer or recipe.model or "")
    if recipe.config is not None:
        config = new_encoder_config(recipe.config, tokenizer)
        lm = AutoModelForMaskedLM.from_config(config)
        return lm, tokenizer
    assert recipe.model is not None
    directory = resolve_model_path(recipe.model)
    try:
        with quiet_loading():
            lm = AutoModelForMaskedLM.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"cannot load a masked-LM model from {directory}: {exc}") from exc
    if lm.config.vocab_size < len(tokenizer):
        raise CheckpointError(
            f"the tokenizer has {len(tokenizer)} tokens but {directory} embeds only {lm.config.vocab_size}"
        )
    return lm, tokenizer


def build_trainer(recipe: RetroMAEArguments, training: TrainingArguments) -> RetroMAETrainer:
    """Everything the run needs, wired into a `RetroMAETrainer` (no training yet)."""
    recipe.validate()
    lm, tokenizer = load_masked_lm(recipe)
    limit = position_limit(lm.config)
    if recipe.max_seq_length > limit:
        raise InputError(f"max_seq_length {recipe.max_seq_length} exceeds the model's {limit} positions")
    with_decoder = recipe.objective == "retromae"
    model = RetroMAEModel(
        lm,
        with_decoder=with_decoder,
        encoder_loss_weight=recipe.encoder_loss_weight,
        decoder_loss_weight=recipe.decoder_loss_weight,
    )
    corpus = TextCorpus(recipe.corpus)
    collator = RetroMAECollator(
        tokenizer,
        max_seq_length=recipe.max_seq_length,
        encoder_mlm_probability=recipe.encoder_mlm_probability,
        decoder_mlm_probability=recipe.decoder_mlm_probability,
        pad_to_multiple_of=recipe.pad_to_multiple_of,
        with_decoder=with_decoder,
    )
    if recipe.token_cache:
        collator.use_token_cache(corpus.files())
    logger.info(
        "corpus: %d texts from %s", len(corpus), ", ".join(f"{k} ({v})" for k, v in corpus.sizes.items())
    )
    return RetroMAETrainer(
        model=model,
        args=training,
        train_dataset=corpus,
        data_collator=collator,
        processing_class=tokenizer,
    )


def train_retromae(recipe: RetroMAEArguments, training: TrainingArguments) -> Path:
    """Pre-train and save; returns the final encoder directory (`output_dir/encoder_model`)."""
    output = run_training(
        partial(build_trainer, recipe, training),
        output_dir=str(training.output_dir),
        resume=training.resume_from_checkpoint,
        recipe=partial(asdict, recipe),
    )
    return output / ENCODER_DIR
