"""Cross-encoders: a sequence classifier with one logit (the `BAAI/bge-reranker-*` layout) and its tokenizer.

A reranker reads a (query, passage) pair as one input and gives one relevance logit. This module only finds,
checks, loads and saves such checkpoints; pair building and batching live in `trivec.inference.reranker`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from trivec.errors import CheckpointError
from trivec.models.checkpoint import TOKENIZER_FILES, quiet_loading, read_json_object, resolve_model_path

ROBERTA_TYPES = {"xlm-roberta", "roberta", "camembert", "xlm-roberta-xl"}
CLASSIFIER_SUFFIX = "ForSequenceClassification"
TRIVEC_RERANKER_FILE = "trivec_reranker.json"  # trivec's settings beside a reranker (query instruction)


def classifier_problem(config: Any) -> str | None:
    """Why `config` is not a one-logit sequence classifier, or None when it is one."""
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(str(name).endswith(CLASSIFIER_SUFFIX) for name in architectures):
        named = ", ".join(architectures) if architectures else "no architecture"
        return f"its config names {named}, not a *{CLASSIFIER_SUFFIX} (a cross-encoder reranker)"
    labels = int(getattr(config, "num_labels", 1))
    if labels != 1:
        return f"its classifier has {labels} labels; a reranker gives one relevance logit"
    return None


def refuse_cross_encoder(directory: Path, config: Any) -> None:
    """Refuse a one-logit classifier where embeddings are asked for (its backbone's cosines mean nothing)."""
    if classifier_problem(config) is None:
        raise CheckpointError(
            f"{directory} is a cross-encoder reranker ({', '.join(config.architectures)}): it scores (query, "
            "passage) pairs and gives no embeddings; load it with Reranker (`trivec rerank`)"
        )


def position_limit(config: Any, tokenizer: Any = None) -> int:
    """The longest input (special tokens included) the model's position table allows."""
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    if getattr(config, "model_type", "") in ROBERTA_TYPES:
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1  # positions start at padding_idx + 1
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < positions:
        return limit
    return positions


def read_reranker_settings(directory: Path) -> dict[str, Any]:
    """trivec's reranker settings saved beside a checkpoint (`trivec_reranker.json`), or {}."""
    return read_json_object(directory / TRIVEC_RERANKER_FILE) or {}


def load_cross_encoder(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    init_head: bool = False,
) -> tuple[Any, Any, Path]:
    """(model, tokenizer, directory) of a cross-encoder: a local directory or a hub id.

    `init_head=False` (inference) refuses a checkpoint that is not a one-logit classifier — a bare encoder
    would get a random head and give random scores. `init_head=True` (training) starts a reranker from any
    encoder: its own classifier when it has one, else a new one-logit head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    directory = resolve_model_path(name_or_path)
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory} has no config.json: not a Hugging Face model directory")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{directory} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)})")
    try:
        with quiet_loading():
            config = AutoConfig.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"cannot read the config of {directory}: {exc}") from exc
    problem = classifier_problem(config)
    if problem is not None:
        if not init_head:
            raise CheckpointError(f"{name_or_path} is not a reranker: {problem}")
        config.num_labels = 1
        config.architectures = None
    try:
        with quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                directory, config=config, dtype=dtype or torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as exc:
        raise CheckpointError(f"cannot load the cross-encoder or tokenizer from {directory}: {exc}") from exc
    return model, tokenizer, directory


def save_cross_encoder(
    model: Any, tokenizer: Any, directory: str | os.PathLike[str], settings: dict[str, Any] | None = None
) -> Path:
    """Save in the bge-reranker layout (`save_pretrained` of model and tokenizer) plus trivec's settings."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if settings:
        (out / TRIVEC_RERANKER_FILE).write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return out
