"""Training rows in FlagEmbedding's JSONL format, read and checked before any training starts.

One row per line: `{"query": str, "pos": [str], "neg": [str], "pos_scores": [float], "neg_scores": [float],
"prompt": str, "type": str}`; `neg`, the scores, `prompt` and `type` are optional. Every problem is reported
with file, line and field (e.g. `train.jsonl:12: field 'neg[3]' must be a string, got int`), and all rows of
all files are checked before the first step, so a run never stops half-way on bad data.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.io import iter_jsonl

KNOWN_FIELDS = frozenset({"query", "pos", "neg", "pos_scores", "neg_scores", "prompt", "type"})
# `type` values FlagEmbedding acts on (symmetric tasks get the instruction on passages too); any other string is kept and ignored.
SYMMETRIC_TYPES = frozenset({"symmetric_sts", "symmetric_clustering"})


@dataclass
class TrainExample:
    """One validated row; `line` is its 1-based line in `source`."""

    query: str
    pos: list[str]
    neg: list[str]
    pos_scores: list[float] | None = None
    neg_scores: list[float] | None = None
    prompt: str | None = None
    type: str | None = None
    source: str = ""
    line: int = 0


def _where(path: Path, line: int, name: str) -> str:
    return f"{path}:{line}: field {name!r}"


def _text_list(value: Any, path: Path, line: int, name: str, allow_empty: bool) -> list[str]:
    if not isinstance(value, list):
        raise InputError(f"{_where(path, line, name)} must be a list of strings, got {type(value).__name__}")
    if not value and not allow_empty:
        raise InputError(f"{_where(path, line, name)} is empty: a row needs at least one positive")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise InputError(
                f"{_where(path, line, f'{name}[{i}]')} must be a string, got {type(text).__name__}"
            )
    return list(value)


def _score_list(value: Any, path: Path, line: int, name: str, expected: int, of: str) -> list[float]:
    if not isinstance(value, list):
        raise InputError(f"{_where(path, line, name)} must be a list of numbers, got {type(value).__name__}")
    for i, score in enumerate(value):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError(f"{_where(path, line, f'{name}[{i}]')} must be a finite number, got {score!r}")
    if len(value) != expected:
        raise InputError(
            f"{_where(path, line, name)} has {len(value)} scores but {of!r} has {expected} texts"
        )
    return [float(s) for s in value]


def parse_example(obj: dict[str, Any], path: Path, line: int, need_scores: bool) -> TrainExample:
    """Check one decoded row; raise `InputError` naming file, line and field."""
    query = obj.get("query")
    if not isinstance(query, str):
        problem = "is missing" if "query" not in obj else f"must be a string, got {type(query).__name__}"
        raise InputError(f"{_where(path, line, 'query')} {problem}")
    if not query.strip():
        raise InputError(f"{_where(path, line, 'query')} is empty")
    if "pos" not in obj:
        raise InputError(f"{_where(path, line, 'pos')} is missing (a list of positive passages)")
    pos = _text_list(obj["pos"], path, line, "pos", allow_empty=False)
    neg = _text_list(obj.get("neg", []) if obj.get("neg") is not None else [], path, line, "neg", True)
    pos_scores = neg_scores = None
    if need_scores:
        for name in ("pos_scores", "neg_scores"):
            if obj.get(name) is None:
                raise InputError(
                    f"{_where(path, line, name)} is missing: knowledge distillation needs teacher scores "
                    "for every positive and negative"
                )
        pos_scores = _score_list(obj["pos_scores"], path, line, "pos_scores", len(pos), "pos")
        neg_scores = _score_list(obj["neg_scores"], path, line, "neg_scores", len(neg), "neg")
    prompt = obj.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"{_where(path, line, 'prompt')} must be a string, got {type(prompt).__name__}")
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise InputError(f"{_where(path, line, 'type')} must be a string, got {type(kind).__name__}")
    return TrainExample(query, pos, neg, pos_scores, neg_scores, prompt, kind, str(path), line)


def load_examples(path: str | os.PathLike[str], need_scores: bool = False) -> list[TrainExample]:
    """All rows of one JSONL file, validated; an empty file is an error."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise InputError(f"{path}: training data must be JSONL (.jsonl / .json), one row per line")
    examples = [parse_example(obj, path, line, need_scores) for line, obj in iter_jsonl(path)]
    if not examples:
        raise InputError(f"{path}: no training rows")
    return examples
