"""(title, body) training pairs from a corpus — the C-MTP "unlabeled" recipe of BGE stage 2.

Each corpus row `{"title", "text"}` with a non-empty title becomes `{"query": title, "pos": [text], "neg": []}`
(other fields can be chosen, e.g. `sentence1`/`sentence2` of STS data, with row filters `where` — equal
values, e.g. `split=train` — and `at_least` — a minimum gold score, e.g. `score=4`)
(train with `train_group_size: 1`: in-batch negatives only, as stage 2 does, or mine negatives first). With
a filter model, pairs whose dense score (title as query, text as passage) is below `min_score` are dropped,
as C-Pack filtered its 1.2B pairs with a text-embedding model. Identical pairs are written once, in file order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trivec.errors import InputError
from trivec.io import atomic_writer, check_output_path, iter_jsonl


@dataclass
class PairStats:
    rows: int = 0
    no_title: int = 0
    skipped: int = 0
    duplicates: int = 0
    filtered: int = 0
    written: int = 0

    def summary(self) -> str:
        return (
            f"{self.written} pairs from {self.rows} rows ({self.skipped} not selected, "
            f"{self.no_title} without query or passage text, "
            f"{self.duplicates} duplicates, {self.filtered} below the score filter)"
        )


def read_title_pairs(
    path: str | os.PathLike[str],
    query_field: str = "title",
    passage_field: str = "text",
    where: Mapping[str, str] | None = None,
    at_least: Mapping[str, float] | None = None,
) -> tuple[list[tuple[str, str]], PairStats]:
    """(title, text) of every selected row that has both, duplicates removed; bad fields are an error."""
    path = Path(path)
    stats = PairStats()
    seen: dict[tuple[str, str], None] = {}
    for line, obj in iter_jsonl(path):
        stats.rows += 1
        if not _selected(obj, path, line, where or {}, at_least or {}):
            stats.skipped += 1
            continue
        values = []
        for name in (query_field, passage_field):
            value = obj.get(name)
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"{path}:{line}: field {name!r} must be a string, got {type(value).__name__}"
                )
            values.append((value or "").strip())
        title, text = values
        if not title or not text:
            stats.no_title += 1
            continue
        if (title, text) in seen:
            stats.duplicates += 1
            continue
        seen[(title, text)] = None
    if not seen:
        raise InputError(
            f"{path}: no selected row has both a non-empty {query_field!r} and {passage_field!r} "
            f"({stats.rows} rows read)"
        )
    return list(seen), stats


def _selected(
    obj: dict[str, Any], path: Path, line: int, where: Mapping[str, str], at_least: Mapping[str, float]
) -> bool:
    for name, wanted in where.items():
        if name not in obj or str(obj[name]) != wanted:
            return False
    for name, minimum in at_least.items():
        value = obj.get(name)
        if value is None:
            return False
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{path}:{line}: field {name!r} must be a number, got {type(value).__name__}")
        if value < minimum:
            return False
    return True


def parse_filters(items: list[str] | None, numeric: bool, option: str) -> dict[str, Any]:
    """`FIELD=VALUE` items of a command-line option."""
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"{option} expects FIELD=VALUE, got {item!r}")
        if numeric:
            try:
                out[name.strip()] = float(value)
            except ValueError:
                raise InputError(f"{option} {name}: {value!r} is not a number") from None
        else:
            out[name.strip()] = value
    return out


def build_pairs(
    corpus: str | os.PathLike[str],
    output: str | os.PathLike[str],
    filter_model: Any = None,
    min_score: float | None = None,
    query_field: str = "title",
    passage_field: str = "text",
    max_length: int | None = 512,
    where: Mapping[str, str] | None = None,
    at_least: Mapping[str, float] | None = None,
) -> PairStats:
    """Write the pairs of `corpus` to `output` (atomically); `filter_model` is an `Embedder` or None (the
    queries get its `query` prompt, the passages its `document` prompt)."""
    if (filter_model is None) != (min_score is None):
        raise InputError("--filter-model and --min-score go together")
    check_output_path(output, inputs=[corpus])
    pairs, stats = read_title_pairs(corpus, query_field, passage_field, where, at_least)
    keep = np.ones(len(pairs), dtype=bool)
    if filter_model is not None:
        limit = min(max_length or filter_model.max_length, filter_model.position_limit)
        titles = filter_model.encode(
            [t for t, _ in pairs], dense=True, prompt_name="query", max_length=limit
        ).dense
        texts = filter_model.encode(
            [b for _, b in pairs], dense=True, prompt_name="document", max_length=limit
        ).dense
        scores = np.einsum("nd,nd->n", titles, texts)
        keep = scores >= float(min_score)  # type: ignore[arg-type]
        stats.filtered = int((~keep).sum())
        if not keep.any():
            raise InputError(
                f"no pair scored ≥ {min_score} (best {float(scores.max()):.4f}); nothing written to {output}"
            )
    with atomic_writer(output) as handle:
        for (title, text), ok in zip(pairs, keep, strict=True):
            if ok:
                handle.write(
                    json.dumps({"query": title, "pos": [text], "neg": []}, ensure_ascii=False) + "\n"
                )
                stats.written += 1
    return stats
