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
    with pytest.raises(InputError, match="at least 10 passages"):
        fit_sparse_head_to_idf(with_heads, [], per_corpus=True)
    with pytest.raises(InputError, match="one list of passages per training file"):
        fit_sparse_head_to_idf(with_heads, passages)  # passages, not corpora: str is a Sequence[str]
    with pytest.raises(InputError, match="sparse_init must be random, idf or idf_per_file"):
        ModelArguments(sparse_init="bm25").validate()


def test_interleave_takes_passages_from_every_corpus_in_turn() -> None:
    from trivec.training.sparse_init import _interleave

    assert _interleave([["a", "b", "c"], ["d"], ["e", "f"]]) == [0, 3, 4, 1, 5, 2]
    assert _interleave([]) == []


def test_one_corpus_gives_the_same_fit_whether_or_not_split_into_files(passages: list[str]) -> None:
    fitted = []
    for corpora in ([passages], [passages[:150], passages[150:]]):
        model = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=0)
        fit_sparse_head_to_idf(model, corpora, max_length=96, fit_passages=120)
        fitted.append(model.sparse_head.linear.weight.detach().clone())  # type: ignore[union-attr]
    torch.testing.assert_close(fitted[0], fitted[1])


def test_idf_per_file_sees_every_file_and_counts_common_words_within_their_own(passages: list[str]) -> None:
    """A large file with none of English's function words ahead of a small English one: `idf` fits on the
    first file alone and counts "the" as rare over the mix; `per_corpus` counts it within the English file
    (in nearly every passage) and fits on both files."""
    numbers = [" ".join(str(1000 + (7 * i + j) % 997) for j in range(40)) for i in range(400)]
    weight_of = {}
    for per_corpus in (False, True):
        model = M3Model.from_pretrained("all-MiniLM-L6-v2", heads="init", seed=0)
        fit_sparse_head_to_idf(
            model, [numbers, passages], max_length=96, fit_passages=300, per_corpus=per_corpus
        )
        batch = model.tokenizer(["the boundary layer of the wing"], return_tensors="pt")
        with torch.no_grad():
            weights = model(
                batch["input_ids"], batch["attention_mask"], dense=False, sparse=True
            ).token_weights
        tokens = model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
        weight_of[per_corpus] = dict(zip(tokens, weights[0].tolist(), strict=True))
    per_file = weight_of[True]
    assert per_file["wing"] > per_file["the"] and per_file["boundary"] > per_file["of"]
    ratio = {k: w["the"] / max(w["wing"], 1e-6) for k, w in weight_of.items()}
    assert ratio[True] < ratio[False]
