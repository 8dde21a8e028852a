"""Cross-encoder (reranker) fine-tuning, as FlagEmbedding's `finetune.reranker.encoder_only`: each query
forms a group of one positive and `group_size - 1` negatives, the model scores the `group_size` pairs, and
the loss is the cross-entropy of the group's logits with the positive as the target.

The rows are FlagEmbedding JSONL (`trivec.training.examples`, checked in full before the first step); the
positive is drawn from `pos` and the negatives from `neg` (with repetition when a row has fewer), seeded by
row and epoch. Pairs are built by `PairTokenizer`, exactly as `Reranker` scores them. With the token cache
(`token_cache`, `trivec.training.token_cache`) each file's distinct (query, passage) pairs are built once and
their ids stored beside the data: a pair is cut, decoded and tokenised again as a whole (the round trip can
change a text's ids), so the cache holds whole pairs, not texts to put together. Training runs on the
Hugging Face Trainer through `trivec.training.runner` (checkpoints, resume, `torchrun` launch, `log.csv`, the
final model moved into place only once complete); this module saves that model in the bge-reranker layout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from trivec.errors import InputError
from trivec.inference.reranker import PairTokenizer
from trivec.models.cross_encoder import load_cross_encoder, position_limit, save_cross_encoder
from trivec.models.lora import LORA_DIR, is_lora, merged_copy
from trivec.training.dataset import subsample
from trivec.training.examples import TrainExample, load_examples
from trivec.training.modeling import set_dropout
from trivec.training.optimizer import head_rate_optimizer
from trivec.training.reranker.adapters import add_reranker_lora, is_head_parameter, trainable_summary
from trivec.training.reranker.arguments import RerankerConfig
from trivec.training.runner import run_training
from trivec.training.token_cache import TokenLookup, build_lookup, pad_rows, tokenizer_fingerprint

logger = logging.getLogger(__name__)


class GroupDataset(Dataset):
    """One item per row: (query, [positive, negative × (group_size − 1)]), sampled per row and epoch."""

    def __init__(self, examples: list[TrainExample], group_size: int, seed: int) -> None:
        self.examples, self.group_size, self.seed = examples, group_size, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[str, list[str]]:
        ex = self.examples[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        positive = ex.pos[int(rng.integers(len(ex.pos)))]
        want = self.group_size - 1
        pool = ex.neg if len(ex.neg) >= want else ex.neg * (-(-want // len(ex.neg)))
        picked = rng.choice(len(pool), want, replace=False)
        return ex.query, [positive, *(pool[i] for i in picked.tolist())]


class _Epochs(TrainerCallback):
    """Tell the dataset which epoch it is, so each epoch draws other negatives."""

    def __init__(self, dataset: GroupDataset) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.dataset.epoch = int(state.epoch or 0)


def file_pairs(examples: Sequence[TrainExample]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every distinct (query, passage) pair a group can hold, per source file: what the token cache builds."""
    files: dict[str, dict[tuple[str, str], None]] = {}
    for ex in examples:
        pairs = files.setdefault(ex.source, {})
        for passage in (*ex.pos, *ex.neg):
            pairs.setdefault((ex.query, passage), None)
    return [(source, list(pairs)) for source, pairs in files.items()]


class GroupCollator:
    """Groups → padded pair tensors (`[B·G, L]`), built by `PairTokenizer` as `Reranker` builds them (or read
    from the token cache: the same ids), padded on the right."""

    ROLE = "pair"

    def __init__(self, pairs: PairTokenizer, pad_id: int) -> None:
        self.pairs, self.pad_id = pairs, pad_id
        self.columns = ("ids", "types") if pairs.with_token_types else ("ids",)
        self.token_cache: TokenLookup | None = None

    def encode(self, items: Sequence[tuple[str, str]]) -> dict[str, list[list[int]]]:
        """The ids (and token types) of each pair, unpadded: what the token cache holds."""
        inputs = self.pairs.tokenize_pairs(items)
        columns = {"ids": inputs.input_ids}
        if inputs.token_type_ids is not None:
            columns["types"] = inputs.token_type_ids
        return columns

    def use_token_cache(
        self,
        files: Sequence[tuple[str | os.PathLike[str], Sequence[tuple[str, str]]]],
        folder: Path | None = None,
    ) -> TokenLookup:
        """Load (or build and write) the token cache of each data file (`(path, its pairs)`, `file_pairs`)
        and read each pair's ids from it from now on."""
        settings = {
            "trainer": "reranker",
            "tokenizer": tokenizer_fingerprint(self.pairs.tokenizer),
            "max_length": self.pairs.max_length,
            "query_max_length": self.pairs.query_max_length,
            "query_instruction": self.pairs.query_instruction,
        }
        lookup = build_lookup(
            [(path, {self.ROLE: list(dict.fromkeys(pairs))}) for path, pairs in files],
            settings,
            lambda role, pairs: self.encode(cast(list[tuple[str, str]], pairs)),
            columns=self.columns,
            vocab_size=len(self.pairs.tokenizer),
            folder=folder,
            what="pairs",
        )
        self.token_cache = lookup
        return lookup

    def _cached(self, items: list[tuple[str, str]]) -> Mapping[str, Sequence[Any]] | None:
        """Every column of every pair from the token cache, or None (no cache, or a pair it lacks)."""
        if self.token_cache is None:
            return None
        columns = {}
        for name in self.columns:
            rows = self.token_cache.rows(self.ROLE, items, name)
            if rows is None:
                return None
            columns[name] = rows
        return columns

    def __call__(self, groups: list[tuple[str, list[str]]]) -> dict[str, torch.Tensor]:
        items = [(query, passage) for query, passages in groups for passage in passages]
        columns = self._cached(items) or self.encode(items)
        input_ids, mask = pad_rows(columns["ids"], self.pad_id)
        batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
        if "types" in columns:
            batch["token_type_ids"] = torch.from_numpy(pad_rows(columns["types"], 0)[0])
        return batch


class RerankerTrainer(Trainer):
    """Cross-entropy over each group's logits, the positive (column 0) as the target."""

    def __init__(
        self, *args: Any, group_size: int, head_learning_rate: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.group_size = group_size
        self.head_learning_rate = head_learning_rate

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with `head_learning_rate`, the head (pooler, classifier) gets its own
        parameter groups at that rate — a new head needs a far larger step than LoRA adapters."""
        if self.head_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        self.optimizer = head_rate_optimizer(self, model, self.head_learning_rate, is_head_parameter)
        return self.optimizer

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        outputs = model(**inputs, return_dict=True)
        logits = outputs.logits.view(-1, self.group_size).float()
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits, target)
        return (loss, outputs) if return_outputs else loss


def load_groups(config: RerankerConfig) -> list[TrainExample]:
    """Every row of every file, checked; a row without negatives cannot form a group."""
    examples: list[TrainExample] = []
    for path in config.data:
        rows = load_examples(path)
        for ex in rows:
            if not ex.neg:
                raise InputError(
                    f"{ex.source}:{ex.line}: field 'neg' is empty: reranker training needs negatives for each "
                    "query (mine them with `trivec mine`)"
                )
        examples.extend(subsample(rows, config.max_examples_per_file, config.seed))
    return examples


def build_reranker_trainer(config: RerankerConfig) -> RerankerTrainer:
    """Data checked, model loaded (a new one-logit head on an encoder without one), trainer wired."""
    config.validate()
    examples = load_groups(config)
    model, tokenizer, _ = load_cross_encoder(config.model, init_head=True)
    if config.dropout is not None:
        set_dropout(model, config.dropout)
    if config.lora_rank is not None:
        model = add_reranker_lora(model, config.lora_rank, config.lora_alpha, config.lora_target_modules)
        logger.info("LoRA rank %d: %s parameters", config.lora_rank, trainable_summary(model))
    pairs = PairTokenizer(
        tokenizer,
        position_limit(model.config, tokenizer),
        max_length=config.max_length,
        query_max_length=config.query_max_length,
        query_instruction=config.query_instruction,
    )
    dataset = GroupDataset(examples, config.group_size, config.seed)
    logger.info(
        "reranker training: %d groups of %d pairs from %s",
        len(examples),
        config.group_size,
        ", ".join(config.data),
    )
    options: dict[str, Any] = dict(config.extra)
    if config.gradient_checkpointing:
        options["activation_checkpointing"] = True
    args = TrainingArguments(
        output_dir=config.output_dir,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_ratio,  # a float below 1: a fraction of the steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        bf16=config.bf16,
        fp16=config.fp16,
        use_cpu=config.use_cpu,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
        **options,
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    collator = GroupCollator(pairs, pad_id)
    if config.token_cache:
        collator.use_token_cache(file_pairs(examples))
    return RerankerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[_Epochs(dataset)],
        group_size=config.group_size,
        head_learning_rate=config.head_learning_rate,
    )


def train_reranker(config: RerankerConfig) -> Path:
    """Train and save the reranker into `output_dir` (files moved into place only once complete)."""
    return run_training(
        partial(build_reranker_trainer, config),
        output_dir=config.output_dir,
        resume=config.resume_from_checkpoint,
        recipe=config.recipe,
        save_model=partial(save_reranker, query_instruction=config.query_instruction),
    )


def save_reranker(trainer: Trainer, folder: Path, query_instruction: str | None) -> None:
    """The bge-reranker layout (LoRA merged into a copy), the query instruction in its settings file, and a
    LoRA run's adapters + head alone in `lora/` (to ship: `trivec.models.reranker_small`)."""
    settings = {"query_instruction": query_instruction} if query_instruction else None
    model: Any = trainer.model
    save_cross_encoder(merged_copy(model), trainer.processing_class, folder, settings)
    if is_lora(model):
        model.save_pretrained(folder / LORA_DIR)
