"""Arguments of contrastive fine-tuning: model, data and loss dataclasses plus HF `TrainingArguments`.

They are filled, in order of precedence, from defaults < a YAML file < command-line flags. The YAML file is a
mapping whose keys are field names of any of the four dataclasses, either flat or grouped under the sections
`model:`, `data:`, `loss:`, `training:` (the section only documents; names are unique across dataclasses).
Defaults follow FlagEmbedding unless a comment here says why trivec chose otherwise (docs/differences.md).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trivec.errors import InputError
from trivec.training.recipe_yaml import current_trainer_names, read_yaml_mapping

if TYPE_CHECKING:  # torch and transformers load when a run is built, not when the CLI reads the help texts
    from transformers import TrainingArguments

Precision = Literal["auto", "fp32", "bf16", "fp16"]
KDLossType = Literal["kl_div", "m3_kd_loss"]
FillNegatives = Literal["error", "random"]
SECTIONS = ("model", "data", "loss", "training")
# Trainable parts of an M3 model: the encoder and the two heads (dense pooling has no weights of its own).
PARTS = ("backbone", "sparse", "colbert")
PART_ALIASES: dict[str, tuple[str, ...]] = {"all": PARTS, "heads": ("sparse", "colbert")}


@dataclass
class ModelArguments:
    """Which encoder to fine-tune and how it pools and runs."""

    model: str = field(default="default", metadata={"help": "Model directory, hub id or 'default'."})
    pooling: str | None = field(
        default=None, metadata={"help": "cls / mean / last_token (default: model's)."}
    )
    normalize: bool | None = field(
        default=None, metadata={"help": "L2-normalise embeddings (default: model's)."}
    )
    dropout: float | None = field(
        default=None, metadata={"help": "Override every dropout probability of the encoder (e.g. 0)."}
    )
    precision: Precision = field(
        default="auto", metadata={"help": "auto = fp32 on CPU, bf16 (else fp16) on a GPU; or fp32/bf16/fp16."}
    )
    colbert_dim: int | None = field(
        default=None, metadata={"help": "Dimension of a NEW ColBERT head (default: the hidden size)."}
    )
    train_parts: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "Parts to train, comma-separated: backbone, sparse, colbert, heads (= sparse,colbert) or "
            "all; the others stay frozen."
        },
    )
    heads_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the sparse/ColBERT heads (default: learning_rate); new heads "
            "trained with a pre-trained backbone need a far larger step than the backbone."
        },
    )
    sparse_init: str = field(
        default="random",
        metadata={
            "help": "Starting weights of the sparse head in unified training: random (a new head's seeded "
            "init, or the model's trained head), idf (fit to the BM25 IDF of the training passages' tokens "
            "by ridge regression on the frozen hidden states, on the first passages in file order; replaces "
            "the head's weights) or idf_per_file (each passage's tokens get the IDF of its own training "
            "file, and the regression takes passages from every file in turn: for a mix of languages)."
        },
    )

    lora_rank: int | None = field(
        default=None,
        metadata={
            "help": "Train the backbone through LoRA adapters of this rank (peft) instead of all its weights; "
            "the saved model has them merged, and a lora/ folder holds the adapters alone."
        },
    )
    lora_alpha: float | None = field(
        default=None, metadata={"help": "LoRA scale numerator (default: 2 × rank)."}
    )
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["query", "key", "value", "dense"],
        metadata={"help": "Backbone linear layers that get adapters (names as peft matches them)."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]
        if isinstance(self.train_parts, str):
            self.train_parts = [p.strip() for p in self.train_parts.split(",") if p.strip()]

    def parts(self) -> tuple[str, ...]:
        """`train_parts` as concrete parts in `PARTS` order (aliases expanded); InputError on unknown names."""
        wanted: set[str] = set()
        for name in self.train_parts:
            key = str(name).strip().lower()
            if key in PARTS:
                wanted.add(key)
            elif key in PART_ALIASES:
                wanted.update(PART_ALIASES[key])
            else:
                allowed = ", ".join((*PARTS, *PART_ALIASES))
                hint = (
                    " ('dense' has no weights of its own: the dense vector is the pooled backbone output, "
                    "train it with 'backbone')"
                    if key == "dense"
                    else ""
                )
                raise InputError(f"unknown train part {name!r}; allowed: {allowed}{hint}")
        if not wanted:
            raise InputError(f"train_parts names no part; allowed: {', '.join((*PARTS, *PART_ALIASES))}")
        return tuple(p for p in PARTS if p in wanted)

    def validate(self) -> None:
        if self.sparse_init not in ("random", "idf", "idf_per_file"):
            raise InputError(f"sparse_init must be random, idf or idf_per_file, got {self.sparse_init!r}")
        if self.heads_learning_rate is not None and not self.heads_learning_rate > 0:
            raise InputError(f"heads_learning_rate must be positive, got {self.heads_learning_rate}")
        if self.pooling is not None and self.pooling not in ("cls", "mean", "last_token"):
            raise InputError(f"pooling must be cls, mean or last_token, got {self.pooling!r}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise InputError(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.colbert_dim is not None and int(self.colbert_dim) < 1:
            raise InputError(f"colbert_dim must be at least 1, got {self.colbert_dim}")
        parts = self.parts()
        if self.lora_rank is not None:
            if not isinstance(self.lora_rank, int) or self.lora_rank < 1:
                raise InputError(f"lora_rank must be a positive integer, got {self.lora_rank!r}")
            if "backbone" not in parts:
                raise InputError(
                    "lora_rank trains the backbone through adapters: add backbone to train_parts"
                )
            if self.lora_alpha is not None and not self.lora_alpha > 0:
                raise InputError(f"lora_alpha must be positive, got {self.lora_alpha}")
            if not 0.0 <= self.lora_dropout < 1.0:
                raise InputError(f"lora_dropout must lie in [0, 1), got {self.lora_dropout}")
            if not self.lora_target_modules:
                raise InputError("lora_target_modules names no layer")


@dataclass
class DataArguments:
    """Training files (each with optional own settings) and how examples become batches."""

    train_data: list[Any] = field(
        default_factory=list,
        metadata={"help": "JSONL files: paths, or mappings {path, batch_size, train_group_size, ...}."},
    )
    train_group_size: int = field(
        default=8, metadata={"help": "Passages per query: 1 positive + G-1 negatives."}
    )
    query_max_len: int = field(default=32, metadata={"help": "Truncate queries to this many tokens."})
    passage_max_len: int = field(default=128, metadata={"help": "Truncate passages to this many tokens."})
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "Pad batches to a multiple."})
    query_instruction: str | None = field(
        default=None,
        metadata={
            "help": "Instruction put before every query (a row's 'prompt' wins); default: the model's "
            "'query' prompt ('' for none). Saved with the model as its 'query' prompt."
        },
    )
    query_instruction_format: str = field(default="{}{}", metadata={"help": "format(instruction, query)."})
    passage_instruction: str | None = field(
        default=None,
        metadata={
            "help": "Put before every passage; default: the model's 'document' prompt ('' for none). Saved "
            "with the model as its 'document' prompt."
        },
    )
    use_row_prompts: bool = field(default=True, metadata={"help": "Use a row's 'prompt' as its instruction."})
    knowledge_distillation: bool = field(
        default=False, metadata={"help": "Distil from the rows' pos_scores / neg_scores (required then)."}
    )
    same_dataset_within_batch: bool = field(
        default=False, metadata={"help": "Every batch comes from one file (per-file batch size, group size)."}
    )
    length_buckets: list[int] | None = field(
        default=None, metadata={"help": "Token-length boundaries; a batch never mixes buckets."}
    )
    bucket_batch_sizes: list[int] | None = field(
        default=None, metadata={"help": "Batch size per bucket (one more than boundaries)."}
    )
    max_examples_per_file: int | None = field(default=None, metadata={"help": "Seeded subsample per file."})
    fill_negatives: FillNegatives = field(
        default="error",
        metadata={"help": "A row with no negatives when G > 1: 'error', or 'random' texts of the same file."},
    )
    token_cache: bool = field(
        default=True,
        metadata={
            "help": "Tokenise each file's texts once and keep the ids beside it (.trivec-tokens/, else "
            "$TRIVEC_CACHE/token-cache), reused while tokenizer, lengths, prompts and file are unchanged."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.train_data, (str, os.PathLike)):
            self.train_data = [p for p in str(self.train_data).split(",") if p]

    def validate(self) -> None:
        if not self.train_data:
            raise InputError("no training data given (--data FILE[,FILE...])")
        for name in ("train_group_size", "query_max_len", "passage_max_len"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.fill_negatives not in ("error", "random"):
            raise InputError(f"fill_negatives must be 'error' or 'random', got {self.fill_negatives!r}")
        if not isinstance(self.token_cache, bool):
            raise InputError(f"token_cache must be true or false, got {self.token_cache!r}")
        if "{}" not in self.query_instruction_format:
            raise InputError("query_instruction_format needs two '{}' slots (instruction, query)")
        if self.length_buckets is not None:
            bounds = list(self.length_buckets)
            if not bounds or any(b <= 0 for b in bounds) or bounds != sorted(set(bounds)):
                raise InputError(f"length_buckets must be increasing positive token counts, got {bounds}")
            if self.bucket_batch_sizes is not None and len(self.bucket_batch_sizes) != len(bounds) + 1:
                raise InputError(
                    f"bucket_batch_sizes needs {len(bounds) + 1} sizes (one per bucket of {bounds}), "
                    f"got {len(self.bucket_batch_sizes)}"
                )
        elif self.bucket_batch_sizes is not None:
            raise InputError("bucket_batch_sizes needs length_buckets")


@dataclass
class LossArguments:
    """The contrastive objective: temperature, negatives, distillation and (M3) unified scores."""

    temperature: float = field(default=0.02, metadata={"help": "Scores are divided by this."})
    in_batch_negatives: bool = field(
        default=True, metadata={"help": "Other queries' passages are negatives too (else own group only)."}
    )
    negatives_cross_device: bool = field(
        default=False, metadata={"help": "Gather passages of all processes as negatives (all_gather)."}
    )
    kd_loss_type: KDLossType = field(
        default="kl_div", metadata={"help": "Teacher-score distillation: kl_div or m3_kd_loss."}
    )
    sub_batch_size: int | None = field(
        default=None, metadata={"help": "Gradient cache: encode this many texts at a time (same result)."}
    )
    unified_finetuning: bool = field(default=False, metadata={"help": "M3: train dense, sparse and ColBERT."})
    use_self_distill: bool = field(default=False, metadata={"help": "M3: the ensemble teaches each head."})
    self_distill_start_step: int = field(
        default=-1, metadata={"help": "M3: self-distillation from this optimizer step on (0-based)."}
    )
    ensemble_weights: list[float] = field(
        default_factory=lambda: [1.0, 0.3, 1.0], metadata={"help": "M3 ensemble: dense, sparse, colbert."}
    )
    loss_weights: list[float] = field(
        default_factory=lambda: [1.0, 0.1, 1.0], metadata={"help": "M3 loss weights: dense, sparse, colbert."}
    )
    self_distill_weights: list[float] | None = field(
        default=None,
        metadata={"help": "M3 self-distillation weights: dense, sparse, colbert (default: loss_weights)."},
    )
    anchor_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of 1 - cosine between each text's trained dense vector and the LoRA backbone's own "
            "(adapters off): keeps what the pretrained model knew and the data does not teach (e.g. "
            "cross-lingual alignment); needs LoRA."
        },
    )

    def validate(self) -> None:
        if not self.anchor_weight >= 0:
            raise InputError(f"anchor_weight must be >= 0, got {self.anchor_weight}")
        if not self.temperature > 0:
            raise InputError(f"temperature must be > 0, got {self.temperature}")
        if self.kd_loss_type not in ("kl_div", "m3_kd_loss"):
            raise InputError(f"kd_loss_type must be kl_div or m3_kd_loss, got {self.kd_loss_type!r}")
        if self.sub_batch_size is not None and self.sub_batch_size < 1:
            raise InputError(f"sub_batch_size must be at least 1, got {self.sub_batch_size}")
        for name in ("ensemble_weights", "loss_weights", "self_distill_weights"):
            values = getattr(self, name)
            if values is None:  # self_distill_weights: the loss weights
                continue
            if len(values) != 3 or any(float(v) < 0 for v in values):
                raise InputError(f"{name} needs three non-negative numbers (dense, sparse, colbert)")
        if self.use_self_distill and not self.unified_finetuning:
            raise InputError("use_self_distill needs unified_finetuning (the ensemble of the three scores)")


# Trainer defaults for this recipe (FlagEmbedding's example: lr 1e-5, warmup 0.1)
TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "num_train_epochs": 1,
    "warmup_steps": 0.1,
    "logging_steps": 10,
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "report_to": ["tensorboard"],
    "remove_unused_columns": False,
    "dataloader_drop_last": False,
    "per_device_train_batch_size": 8,
    "seed": 42,
}

# `trivec train m3`: BGE-M3's unified fine-tuning (FlagEmbedding's m3.sh); YAML and flags still win
M3_DEFAULTS: dict[str, Any] = {
    "unified_finetuning": True,
    "use_self_distill": True,
    "kd_loss_type": "m3_kd_loss",
    "temperature": 0.02,
}

DATACLASSES = (ModelArguments, DataArguments, LossArguments)
STRATEGY_FIELDS = ("save_strategy", "eval_strategy", "logging_strategy")


@dataclass
class ContrastiveConfig:
    """All arguments of one run."""

    model: ModelArguments
    data: DataArguments
    loss: LossArguments
    training: TrainingArguments

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (saved next to the checkpoints)."""
        return {"model": asdict(self.model), "data": asdict(self.data), "loss": asdict(self.loss)}


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping of argument names to values; `model:/data:/loss:/training:` sections are flattened."""
    path = Path(path)
    data = read_yaml_mapping(path)
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            for inner, inner_value in value.items():
                if inner in flat:
                    raise InputError(f"{path}: {inner!r} is given twice")
                flat[inner] = inner_value
        else:
            if key in flat:
                raise InputError(f"{path}: {key!r} is given twice")
            flat[key] = value
    return flat


def check_model_and_loss(model: ModelArguments, loss: LossArguments) -> None:
    """Cross-checks, then `model.train_parts` set to the concrete parts that will train.

    Dense-only training (no `unified_finetuning`) never updates the heads, so it trains the backbone only:
    `all` means `backbone` there, and asking for a head (or only heads) is an error rather than a no-op.
    """
    wanted = model.parts()
    if not loss.unified_finetuning:
        heads = [p for p in wanted if p != "backbone"]
        if heads and model.train_parts != ["all"]:
            raise InputError(
                f"train_parts {','.join(model.train_parts)}: the {' and '.join(heads)} head(s) are trained only "
                "by unified M3 fine-tuning (dense-only training uses no head); use `trivec train m3` or "
                "unified_finetuning: true, or train_parts backbone"
            )
        if model.colbert_dim is not None:
            raise InputError(
                "colbert_dim sets the size of a new ColBERT head, created only by unified M3 fine-tuning; "
                "use `trivec train m3` or unified_finetuning: true"
            )
        wanted = ("backbone",)
    model.train_parts = list(wanted)


def default_precision(precision: str) -> dict[str, bool]:
    """`bf16`/`fp16` Trainer flags for a precision choice: fp32 on CPU, bf16 (else fp16) on a GPU."""
    import torch

    if precision == "auto":
        if not torch.cuda.is_available():
            return {"bf16": False, "fp16": False}
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def build_config(
    yaml_values: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    source: str = "arguments",
    defaults: dict[str, Any] | None = None,
) -> ContrastiveConfig:
    """Defaults < recipe `defaults` (e.g. `M3_DEFAULTS`) < YAML values < overrides (None means 'not given');
    unknown names are an error."""
    import torch
    from transformers import TrainingArguments

    values: dict[str, Any] = dict(TRAINING_DEFAULTS)
    values["dataloader_pin_memory"] = torch.cuda.is_available()
    values.update(defaults or {})
    values.update(yaml_values or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    own = {cls: {f.name for f in fields(cls)} for cls in DATACLASSES}
    trainer_names = {f.name for f in fields(TrainingArguments) if f.init}
    known = set().union(*own.values()) | trainer_names
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: unknown argument(s) {', '.join(unknown)}")
    if not values.get("output_dir"):
        raise InputError("no output directory given (--output)")
    parts: dict[type, Any] = {}
    for cls, names in own.items():
        kwargs = {k: v for k, v in values.items() if k in names}
        try:
            parts[cls] = cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"{source}: {exc}") from exc
        parts[cls].validate()
    model_args: ModelArguments = parts[ModelArguments]
    check_model_and_loss(model_args, parts[LossArguments])
    trainer_values = {k: v for k, v in values.items() if k in trainer_names}
    for name in STRATEGY_FIELDS:  # YAML reads a bare `no` as False
        if trainer_values.get(name) is False:
            trainer_values[name] = "no"
    for flag, on in default_precision(model_args.precision).items():
        trainer_values.setdefault(flag, on)
    if not torch.cuda.is_available() and trainer_values.get("fp16"):
        raise InputError("fp16 training needs a GPU; on CPU use precision fp32 (or bf16)")
    if not torch.cuda.is_available() and trainer_values.get("bf16"):
        trainer_values.setdefault("use_cpu", True)  # bf16 autocast on the CPU (AMX / AVX512-BF16)
    try:
        training = TrainingArguments(**current_trainer_names(trainer_values))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: {exc}") from exc
    return ContrastiveConfig(parts[ModelArguments], parts[DataArguments], parts[LossArguments], training)
