"""Shared helpers of the contrastive-training tests: the tiny-m3 model, training rows, quick configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TINY_M3
from trivec.inference import Embedder


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


# the tiny model, a small corpus and the mining files shared by the miners' tests
WORDS = [
    "river",
    "music",
    "school",
    "garden",
    "market",
    "city",
    "train",
    "winter",
    "bread",
    "stone",
    "light",
    "water",
    "table",
    "paper",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.from_pretrained(TINY_M3, device="cpu")


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=6)) + f" {i}" for i in range(60)]


@pytest.fixture
def mining_files(tmp_path: Path, corpus_texts: list[str]) -> tuple[Path, Path]:
    rows = [
        {"query": f"{WORDS[i]} {WORDS[i + 1]}", "pos": [corpus_texts[i * 5]], "neg": ["old"], "neg_scores": [1.0],
         "prompt": "P: "}
        for i in range(8)
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    corpus = write_jsonl(
        tmp_path / "corpus.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(corpus_texts)]
    )
    return data, corpus
