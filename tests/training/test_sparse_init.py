"""IDF warm start of the sparse head: the IDF itself, the fit on a real encoder, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import SHARED
from trivec.errors import InputError
from trivec.models import M3Model
from trivec.training.arguments import ModelArguments
from trivec.training.sparse_init import bm25_idf, fit_sparse_head_to_idf


def test_bm25_idf_counts_each_passage_once_per_token() -> None:
    idf = bm25_idf([[1, 1, 2], [1], [3]], vocab_size=5)
    n = 3
    expected = [math.log1p((n - df + 0.5) / (df + 0.5)) for df in (0, 2, 1, 1, 0)]
    np.testing.assert_allclose(idf, expected)
    assert idf[1] < idf[2] == idf[3] < idf[0]


@pytest.fixture(scope="module")
def passages() -> list[str]:
    rows = [json.loads(line) for line in (SHARED / "data" / "cranfield" / "corpus.jsonl").open()][:300]
    return [f"{r.get('title') or ''} {r['text']}".strip() for r in rows]


def test_fitted_head_weighs_rare_tokens_above_common_ones(passages: list[str]) -> None:
    model = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=0)
    before = model.sparse_head.linear.weight.detach().clone()  # type: ignore[union-attr]
    stats = fit_sparse_head_to_idf(model, [passages], max_length=96, fit_passages=120)
    assert stats["r2"] > 0.3 and stats["tokens"] > 1000
    assert not torch.equal(before, model.sparse_head.linear.weight)  # type: ignore[union-attr]
    batch = model.tokenizer(["the boundary layer of the wing"], return_tensors="pt")
    with torch.no_grad():
        weights = model(batch["input_ids"], batch["attention_mask"], dense=False, sparse=True).token_weights
    tokens = model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    weight = dict(zip(tokens, weights[0].tolist(), strict=True))
    assert weight["wing"] > weight["the"] and weight["boundary"] > weight["of"]


def test_idf_warm_start_refuses_bad_input(passages: list[str]) -> None:
    dense_only = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="auto")
    with pytest.raises(InputError, match="no sparse head"):
        fit_sparse_head_to_idf(dense_only, [passages])
    with_heads = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=0)
    with pytest.raises(InputError, match="at least 10 passages"):
        fit_sparse_head_to_idf(with_heads, [passages[:3]])
    with pytest.raises(InputError, match="sparse_init must be random, idf or idf_per_file"):
        ModelArguments(sparse_init="bm25").validate()
