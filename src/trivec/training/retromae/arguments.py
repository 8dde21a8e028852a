"""RetroMAE arguments: one dataclass for the recipe, Hugging Face `TrainingArguments` for the loop.

Both can be filled from a YAML file (keys of either dataclass, flat) and then overridden by command-line
flags. Defaults follow FlagEmbedding's `run.py`: max length 512, encoder masking 0.3,
decoder masking 0.5, lr 2e-5, 2 epochs, drop the last incomplete batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from trivec.errors import InputError
from trivec.training.recipe_yaml import current_trainer_names, read_yaml_mapping

if TYPE_CHECKING:  # torch and transformers load when a run is built, not when the CLI reads the help texts
    from transformers import TrainingArguments

Objective = Literal["retromae", "mlm"]
read_yaml = read_yaml_mapping  # a RetroMAE recipe is one flat mapping of argument names to values


@dataclass
class RetroMAEArguments:
    """What to pre-train, on which text, with which masking."""

    model: str | None = field(
        default=None,
        metadata={"help": "Masked-LM checkpoint to continue from (directory, hub id, 'default')."},
    )
    config: str | None = field(
        default=None, metadata={"help": "JSON model config of a NEW encoder trained from scratch."}
    )
    tokenizer: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the model's; required with `config`)."}
    )
    corpus: list[str] = field(
        default_factory=list, metadata={"help": ".jsonl ({'text'} or {'title','text'}) or .txt files."}
    )
    max_seq_length: int = field(default=512, metadata={"help": "Truncate texts to this many tokens."})
    encoder_mlm_probability: float = field(default=0.3, metadata={"help": "Encoder whole-word mask ratio."})
    decoder_mlm_probability: float = field(default=0.5, metadata={"help": "Decoder per-row mask ratio."})
    objective: Objective = field(
        default="retromae", metadata={"help": "'retromae' (encoder + decoder) or 'mlm' (encoder MLM only)."}
    )
    encoder_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the encoder MLM loss."})
    decoder_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the decoder loss."})
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "Pad batches to a multiple."})
    token_cache: bool = field(
        default=True,
        metadata={
            "help": "Tokenise each corpus file's texts once and keep the ids beside it (.trivec-tokens/, else "
            "$TRIVEC_CACHE/token-cache), reused while tokenizer, max_seq_length and file are unchanged; "
            "masks are still drawn per batch."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.corpus, str):
            self.corpus = [p for p in self.corpus.split(",") if p]

    def validate(self) -> None:
        """Raise a clear error for a recipe that cannot run."""
        if (self.model is None) == (self.config is None):
            raise InputError("give exactly one of --model (continue pre-training) or --config (new encoder)")
        if self.config is not None and self.tokenizer is None:
            raise InputError("--config (a new encoder) needs --tokenizer")
        if not self.corpus:
            raise InputError("no --corpus file given")
        for path in self.corpus:
            if not Path(path).is_file():
                raise InputError(f"corpus file {path} does not exist")
        check_masking(self.max_seq_length, self.encoder_mlm_probability, self.decoder_mlm_probability)
        if not isinstance(self.token_cache, bool):
            raise InputError(f"token_cache must be true or false, got {self.token_cache!r}")
        if self.objective not in ("retromae", "mlm"):
            raise InputError(f"objective must be 'retromae' or 'mlm', got {self.objective!r}")


def check_masking(
    max_seq_length: int, encoder_mlm_probability: float, decoder_mlm_probability: float
) -> None:
    """The text length and mask ratios of a run, checked by the recipe before anything loads and by the
    collator that uses them."""
    for name, value in (
        ("encoder_mlm_probability", encoder_mlm_probability),
        ("decoder_mlm_probability", decoder_mlm_probability),
    ):
        if not 0.0 < value < 1.0:
            raise InputError(f"{name} must lie in (0, 1), got {value}")
    if max_seq_length < 3:
        raise InputError(f"max_seq_length must be at least 3, got {max_seq_length}")


TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-5,
    "num_train_epochs": 2,
    "dataloader_drop_last": True,
    "remove_unused_columns": False,
    "logging_steps": 10,
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "report_to": ["tensorboard"],
    "warmup_steps": 0.1,
    "per_device_train_batch_size": 8,
    "seed": 42,
}


def build_arguments(
    yaml_values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None, source: str = "config"
) -> tuple[RetroMAEArguments, TrainingArguments]:
    """Defaults < YAML values < overrides (command-line flags); unknown names are an error."""
    import torch
    from transformers import HfArgumentParser, TrainingArguments

    values: dict[str, Any] = dict(TRAINING_DEFAULTS)
    values["dataloader_pin_memory"] = torch.cuda.is_available()  # pinning without a GPU only warns
    values.update(yaml_values or {})
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(RetroMAEArguments)} | {f.name for f in fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{source}: unknown argument(s) {', '.join(unknown)}")
    if "output_dir" not in values:
        raise InputError("no output directory given (--output)")
    if isinstance(values.get("corpus"), str):
        values["corpus"] = [p for p in values["corpus"].split(",") if p]
    parser = HfArgumentParser((RetroMAEArguments, TrainingArguments))  # type: ignore[arg-type]
    try:
        recipe, training = parser.parse_dict(current_trainer_names(values), allow_extra_keys=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: {exc}") from exc
    recipe.validate()
    return recipe, training
