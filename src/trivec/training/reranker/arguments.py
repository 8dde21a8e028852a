"""The settings of a reranker run, each with its help text and checked in `validate` (the command line's
options take both from here). Light to import: the CLI reads the help texts when it starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trivec.errors import InputError


@dataclass
class RerankerConfig:
    """A reranker run. Defaults follow FlagEmbedding's reranker examples (group 8, lr 6e-5, 512 tokens)."""

    model: str = field(
        metadata={"help": "Start from: a reranker, or any encoder (a new one-logit head is added)."}
    )
    data: list[str] = field(metadata={"help": "FlagEmbedding JSONL (query, pos, neg); repeat."})
    output_dir: str = field(metadata={"help": "Where the trained reranker is saved."})
    group_size: int = field(default=8, metadata={"help": "Pairs per query: 1 positive + negatives."})
    max_length: int = field(default=512, metadata={"help": "Tokens per pair."})
    query_max_length: int | None = None
    query_instruction: str | None = field(
        default=None,
        metadata={
            "help": "Text put before every query (FlagReranker's query_instruction_for_rerank); saved with the "
            "reranker, which puts it before the queries it scores."
        },
    )
    learning_rate: float = field(default=6e-5, metadata={"help": "Peak learning rate."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the data."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after N steps; -1: train for the epochs."})
    batch_size: int = field(default=4, metadata={"help": "Queries (groups) per device step."})
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Share of the steps the learning rate warms up."}
    )
    weight_decay: float = 0.01
    seed: int = field(default=42, metadata={"help": "Random seed (data order, negatives, new head)."})
    logging_steps: int = field(default=10, metadata={"help": "Log (and log.csv) every N steps."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = 2
    dropout: float | None = field(default=None, metadata={"help": "Override the model's dropout."})
    gradient_checkpointing: bool = False
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast (AMX / AVX512-BF16 CPUs, GPUs)."})
    fp16: bool = False
    use_cpu: bool = field(default=False, metadata={"help": "Train on the CPU even with a GPU."})
    resume_from_checkpoint: str | bool | None = field(
        default=None, metadata={"help": "Checkpoint directory to resume from, or 'last'."}
    )
    max_examples_per_file: int | None = field(
        default=None, metadata={"help": "Seeded subsample of each file."}
    )
    lora_rank: int | None = field(
        default=None, metadata={"help": "Train LoRA adapters of this rank (+ the head) only."}
    )
    lora_alpha: float | None = field(
        default=None, metadata={"help": "LoRA scale numerator (default: 2 × rank)."}
    )
    lora_target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    head_learning_rate: float | None = field(
        default=None, metadata={"help": "The (new) head's own learning rate (default: the learning rate)."}
    )
    token_cache: bool = field(
        default=True,
        metadata={
            "help": "Build each file's distinct (query, passage) pairs once and keep their ids beside it "
            "(.trivec-tokens/, else $TRIVEC_CACHE/token-cache), reused while tokenizer, lengths, "
            "instruction and file are unchanged."
        },
    )
    extra: dict[str, Any] = field(default_factory=dict)  # other TrainingArguments fields

    def validate(self) -> None:
        """One-line errors for settings out of range and missing files, before anything loads."""
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
        if not isinstance(self.token_cache, bool):
            raise InputError(f"token_cache must be true or false, got {self.token_cache!r}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise InputError(f"head_learning_rate must be positive, got {self.head_learning_rate}")
        if not self.data:
            raise InputError("no training data: give at least one JSONL file", cli="give --data FILE")
        for path in self.data:
            if not Path(path).is_file():
                raise InputError(f"training data {path}: no such file", cli=f"--data {path}: no such file")

    def recipe(self) -> dict[str, Any]:
        """The settings saved next to the model (where it resumed from is no part of the recipe)."""
        return {k: v for k, v in asdict(self).items() if k != "resume_from_checkpoint"}
