"""Shared helpers of the contrastive-training tests: the tiny-m3 model, training rows, quick configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_M3


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    """Rows as JSONL (a str row is written verbatim, to make broken lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def synthetic_rows(n: int = 16, negatives: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Small rows with words the tiny tokenizer knows: query i, positive i, `negatives` others."""
    topics = ["river", "music", "school", "garden", "market", "city", "train", "winter"]
    rows = []
    for i in range(n):
        topic = topics[(i + seed) % len(topics)]
        rows.append(
            {
                "query": f"what is the {topic} number {i}?",
                "pos": [f"the {topic} number {i} is a place with many people"],
                "neg": [
                    f"a {topics[(i + k + 1) % len(topics)]} story {k} of day {i}" for k in range(negatives)
                ],
            }
        )
    return rows


def quick_overrides(tmp: Path, data: list[str], **extra: Any) -> dict[str, Any]:
    """Arguments of a few-step tiny-m3 run on CPU: no dropout, no TensorBoard, no progress bar."""
    values: dict[str, Any] = {
        "model": str(TINY_M3),
        "train_data": data,
        "output_dir": str(tmp / "out"),
        "train_group_size": 3,
        "per_device_train_batch_size": 4,
        "dropout": 0.0,
        "report_to": [],
        "disable_tqdm": True,
        "logging_steps": 1,
        "save_strategy": "no",
        "use_cpu": True,
        "dataloader_pin_memory": False,
        "seed": 7,
    }
    values.update(extra)
    return values


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", synthetic_rows())
