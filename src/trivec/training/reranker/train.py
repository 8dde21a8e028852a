"""Cross-encoder (reranker) fine-tuning, as FlagEmbedding's `finetune.reranker.encoder_only`: each query
forms a group of one positive and `group_size - 1` negatives, the model scores the `group_size` pairs, and
the loss is the cross-entropy of the group's logits with the positive as the target.

The rows are FlagEmbedding JSONL (`trivec.training.examples`, checked in full before the first step); the
positive is drawn from `pos` and the negatives from `neg` (with repetition when a row has fewer), seeded by
row and epoch. Pairs are built by `PairTokenizer`, exactly as `Reranker` scores them. Training runs on the
Hugging Face Trainer (checkpoints, `resume_from_checkpoint`, `torchrun` launch, `log.csv`); the final model is
saved in the bge-reranker layout, files moved into place only once complete.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from trivec.errors import InputError
from trivec.inference.reranker import PairTokenizer
from trivec.models.cross_encoder import load_cross_encoder, position_limit, save_cross_encoder
from trivec.models.lora import LORA_DIR, is_lora, merged_copy
from trivec.training.csv_log import CSV_LOG_FILE, CSVLogCallback
from trivec.training.examples import TrainExample, load_examples
from trivec.training.finish import close_processes, staged_output
from trivec.training.reranker.adapters import add_reranker_lora, is_head_parameter, trainable_summary

logger = logging.getLogger(__name__)
RECIPE_FILE = "trivec_training.json"


@dataclass
class RerankerConfig:
    """A reranker run. Defaults follow FlagEmbedding's reranker examples (group 8, lr 6e-5, 512 tokens)."""

    model: str
    data: list[str]
    output_dir: str
    group_size: int = 8
    max_length: int = 512
    query_max_length: int | None = None
    query_instruction: str | None = None
    learning_rate: float = 6e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    dropout: float | None = None
    gradient_checkpointing: bool = False
    bf16: bool = False
    fp16: bool = False
    use_cpu: bool = False
    resume_from_checkpoint: str | bool | None = None
    max_examples_per_file: int | None = None  # seeded subsample of each file
    lora_rank: int | None = None  # train LoRA adapters (+ the head whole) instead of every weight
    lora_alpha: float | None = None
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    head_learning_rate: float | None = None  # the (new) head's own rate; None: learning_rate
    extra: dict[str, Any] = field(default_factory=dict)  # other TrainingArguments fields

    def check(self) -> None:
        """One-line errors for settings out of range, before anything loads."""
        if self.group_size < 2:
            raise InputError(
                f"group_size must be at least 2 (one positive and a negative), got {self.group_size}",
                cli=f"--group-size must be at least 2 (one positive and a negative), got {self.group_size}",
            )
        for name in ("batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("max_examples_per_file", "lora_rank"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise InputError(f"head_learning_rate must be positive, got {self.head_learning_rate}")
        if not self.data:
            raise InputError("no training data: give at least one JSONL file", cli="give --data FILE")


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


class GroupCollator:
    """Groups → padded pair tensors (`[B·G, L]`), built by `PairTokenizer` as `Reranker` builds them."""

    def __init__(self, pairs: PairTokenizer, pad_id: int) -> None:
        self.pairs, self.pad_id = pairs, pad_id

    def __call__(self, groups: list[tuple[str, list[str]]]) -> dict[str, torch.Tensor]:
        items = [(query, passage) for query, passages in groups for passage in passages]
        inputs = self.pairs.tokenize_pairs(items)
        width = max(len(ids) for ids in inputs.input_ids)
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        types = torch.zeros((len(items), width), dtype=torch.long)
        for row, ids in enumerate(inputs.input_ids):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            if inputs.token_type_ids is not None:
                types[row, : len(ids)] = torch.tensor(inputs.token_type_ids[row])
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if inputs.token_type_ids is not None:
            batch["token_type_ids"] = types
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
        decay = set(self.get_decay_parameter_names(model))
        groups: list[dict[str, Any]] = []
        for head in (False, True):
            for decayed in (True, False):
                params = [
                    p
                    for n, p in model.named_parameters()
                    if p.requires_grad and is_head_parameter(n) == head and (n in decay) == decayed
                ]
                if params:
                    group: dict[str, Any] = {
                        "params": params,
                        "weight_decay": self.args.weight_decay * decayed,
                    }
                    if head:
                        group["lr"] = self.head_learning_rate
                    groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
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
        limit = config.max_examples_per_file
        if limit is not None and len(rows) > limit:
            keep = np.sort(np.random.default_rng([config.seed, 7]).choice(len(rows), limit, replace=False))
            rows = [rows[i] for i in keep.tolist()]
        examples.extend(rows)
    return examples


def build_reranker_trainer(config: RerankerConfig) -> RerankerTrainer:
    """Data checked, model loaded (a new one-logit head on an encoder without one), trainer wired."""
    config.check()
    examples = load_groups(config)
    model, tokenizer, _ = load_cross_encoder(config.model, init_head=True)
    if config.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = config.dropout
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
    return RerankerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=GroupCollator(pairs, pad_id),
        processing_class=tokenizer,
        callbacks=[_Epochs(dataset), CSVLogCallback(Path(config.output_dir) / CSV_LOG_FILE)],
        group_size=config.group_size,
        head_learning_rate=config.head_learning_rate,
    )


def train_reranker(config: RerankerConfig) -> Path:
    """Train and save the reranker into `output_dir` (files moved into place only once complete)."""
    trainer = build_reranker_trainer(config)
    trainer.train(resume_from_checkpoint=config.resume_from_checkpoint)
    output = Path(config.output_dir)
    if trainer.args.should_save:
        with staged_output(output) as staging:
            settings = {"query_instruction": config.query_instruction} if config.query_instruction else None
            model: Any = trainer.model
            save_cross_encoder(merged_copy(model), trainer.processing_class, staging, settings)
            if is_lora(model):  # adapters + head alone, to ship (trivec.models.reranker_small)
                model.save_pretrained(staging / LORA_DIR)
            recipe = {k: v for k, v in asdict(config).items() if k != "resume_from_checkpoint"}
            (staging / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, default=str), encoding="utf-8")
    close_processes()
    return output
