"""Parity with FlagEmbedding 1.4.2 on the tiny BGE-M3 checkpoint (reference.json), within 1e-5 absolute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from trivec import Embedder
from trivec.inference import lexical_matrix, lexical_score, maxsim

TOL = 1e-5
Q1_PAIRS = {
    10,
    11,
}  # the two pairs whose batched ColBERT score shows docs/differences.md Q1 (padding rows in the max)


@pytest.fixture(scope="module")
def encoded(tiny: Embedder, tiny_reference: dict[str, Any]):
    texts = [s["text"] for s in tiny_reference["sentences"]]
    return tiny.encode(texts, dense=True, sparse=True, colbert=True, max_length=512)


def test_token_ids_match(tiny: Embedder, tiny_reference: dict[str, Any]) -> None:
    for sentence in tiny_reference["sentences"]:
        assert tiny.tokenize([sentence["text"]], 512)[0] == sentence["input_ids"], sentence["id"]


def test_dense_matches(encoded, tiny_reference: dict[str, Any]) -> None:
    for i, sentence in enumerate(tiny_reference["sentences"]):
        np.testing.assert_allclose(encoded.dense[i], sentence["dense"], atol=TOL, err_msg=sentence["id"])


def test_lexical_weights_match_per_id(encoded, tiny_reference: dict[str, Any]) -> None:
    for i, sentence in enumerate(tiny_reference["sentences"]):
        expected = {int(k): v for k, v in sentence["lexical_weights"].items()}
        got = dict(zip(encoded.sparse[i].indices.tolist(), encoded.sparse[i].values.tolist(), strict=True))
        assert set(got) == set(expected), sentence["id"]
        for token_id, weight in expected.items():
            assert abs(got[token_id] - weight) <= TOL, (sentence["id"], token_id)
    assert encoded.sparse[i].indices.dtype == np.int32 and encoded.sparse[i].values.dtype == np.float32


def test_colbert_rows_match(encoded, tiny_reference: dict[str, Any]) -> None:
    for i, sentence in enumerate(tiny_reference["sentences"]):
        expected = np.asarray(sentence["colbert"], dtype=np.float32)
        assert encoded.colbert[i].shape == tuple(sentence["colbert_shape"]) == expected.shape
        assert encoded.colbert[i].dtype == np.float32
        np.testing.assert_allclose(encoded.colbert[i], expected, atol=TOL, err_msg=sentence["id"])


def test_long_text_at_8192(tiny: Embedder, tiny_reference: dict[str, Any]) -> None:
    long = tiny_reference["long_untruncated"]
    text = next(s["text"] for s in tiny_reference["sentences"] if s["id"] == long["id"])
    result = tiny.encode([text], sparse=True, colbert=True, max_length=8192)
    assert tiny.tokenize([text], 8192)[0] == long["input_ids"]
    np.testing.assert_allclose(result.dense[0], long["dense"], atol=TOL)
    np.testing.assert_allclose(result.colbert[0], np.asarray(long["colbert"]), atol=TOL)
    got = dict(zip(result.sparse[0].indices.tolist(), result.sparse[0].values.tolist(), strict=True))
    expected = {int(k): v for k, v in long["lexical_weights"].items()}
    assert set(got) == set(expected)
    assert max(abs(got[k] - v) for k, v in expected.items()) <= TOL
    # default max_length is the model's limit (8192), so no explicit argument is needed
    np.testing.assert_allclose(tiny.encode([text]).dense[0], long["dense"], atol=TOL)


def test_instruction_case(tiny: Embedder, tiny_reference: dict[str, Any]) -> None:
    case = tiny_reference["instruction"]
    instruction = case["query_instruction_for_retrieval"]
    result = tiny.encode([case["query"]], prompt=instruction, sparse=True)
    assert tiny.tokenize([instruction + case["query"]])[0] == case["input_ids"]
    np.testing.assert_allclose(result.dense[0], case["encode_queries_dense"], atol=TOL)
    expected = {int(k): v for k, v in case["encode_queries_lexical_weights"].items()}
    # typed before the query, as FlagEmbedding joins it, the instruction's tokens are the query's words
    typed = tiny.encode([instruction + case["query"]], prompt="", sparse=True).sparse[0]
    got = dict(zip(typed.indices.tolist(), typed.values.tolist(), strict=True))
    assert set(got) == set(expected) and max(abs(got[k] - v) for k, v in expected.items()) <= TOL
    # given as the prompt, its tokens carry no lexical weight (Q19): the query's own tokens keep theirs
    own = dict(zip(result.sparse[0].indices.tolist(), result.sparse[0].values.tolist(), strict=True))
    prompt_ids = set(tiny.tokenize([instruction.rstrip()])[0])
    assert set(own) < set(expected)
    assert all(abs(own[k] - expected[k]) <= TOL for k in own if k not in prompt_ids)
    assert all(k in own for k in expected if k not in prompt_ids)
    corpus = tiny.encode([case["query"]])
    np.testing.assert_allclose(corpus.dense[0], case["encode_corpus_dense_no_instruction"], atol=TOL)


def test_pair_scores(tiny: Embedder, tiny_reference: dict[str, Any], tiny_texts: dict[str, str]) -> None:
    pairs = [(tiny_texts[p["query"]], tiny_texts[p["passage"]]) for p in tiny_reference["pairs"]]
    scores = tiny.score_pairs(pairs, weights=[1, 1, 1], max_query_length=512, max_passage_length=512)
    for i, ref in enumerate(tiny_reference["pairs"]):
        single = ref["compute_score_single"]
        for mode in ("dense", "sparse", "colbert", "sparse+dense", "colbert+sparse+dense"):
            assert abs(scores[mode][i] - single[mode]) <= TOL, (i, mode)
        assert abs(scores["dense"][i] - ref["dense_dot"]) <= TOL
        assert abs(scores["sparse"][i] - ref["lexical_matching_score"]) <= TOL
        # Q1: exact MaxSim equals the reference's unpadded colbert_score for every pair …
        assert abs(scores["colbert"][i] - ref["colbert_score"]) <= TOL
        batched = ref["compute_score_batched"]
        if i in Q1_PAIRS:  # … and deliberately differs from its batch-dependent batched value
            assert batched["colbert"] - scores["colbert"][i] > 1e-3
        else:
            for mode in batched:
                assert abs(scores[mode][i] - batched[mode]) <= TOL, (i, mode)


def test_functional_scores(encoded, tiny_reference: dict[str, Any]) -> None:
    index = {s["id"]: i for i, s in enumerate(tiny_reference["sentences"])}
    for ref in tiny_reference["pairs"]:
        if ref["query"] in index and ref["passage"] in index:
            q, p = index[ref["query"]], index[ref["passage"]]
            assert (
                abs(lexical_score(encoded.sparse[q], encoded.sparse[p]) - ref["lexical_matching_score"])
                <= TOL
            )
            assert abs(maxsim(encoded.colbert[q], encoded.colbert[p]) - ref["colbert_score"]) <= TOL


def test_weighted_scores(tiny: Embedder, tiny_reference: dict[str, Any], tiny_texts: dict[str, str]) -> None:
    weighted = tiny_reference["weighted"]
    pairs = [(tiny_texts[p["query"]], tiny_texts[p["passage"]]) for p in tiny_reference["pairs"]]
    scores = tiny.score_pairs(
        pairs, weights=weighted["weights_for_different_modes"], max_query_length=512, max_passage_length=512
    )
    w_dense, w_sparse, w_colbert = weighted["weights_for_different_modes"]
    for mode, expected in weighted["scores"].items():
        for i, value in enumerate(expected):
            if i in Q1_PAIRS and "colbert" in mode:
                # intended value: the same weighting over the exact MaxSim of the reference's colbert_score
                exact = tiny_reference["pairs"][i]["colbert_score"]
                if mode == "colbert":
                    value = exact
                else:
                    ref = tiny_reference["pairs"][i]
                    value = (
                        w_dense * ref["dense_dot"]
                        + w_sparse * ref["lexical_matching_score"]
                        + w_colbert * exact
                    ) / (w_dense + w_sparse + w_colbert)
            assert abs(scores[mode][i] - value) <= TOL, (mode, i)


def test_lexical_matrix(tiny: Embedder, tiny_reference: dict[str, Any], tiny_texts: dict[str, str]) -> None:
    case = tiny_reference["lexical_matrix"]
    q = tiny.encode(
        [tiny_texts[k] for k in case["queries"]],
        prompt_name="query",
        dense=False,
        sparse=True,
        max_length=512,
    )
    p = tiny.encode([tiny_texts[k] for k in case["passages"]], dense=False, sparse=True, max_length=512)
    np.testing.assert_allclose(lexical_matrix(q.sparse, p.sparse), case["scores"], atol=TOL)


def test_token_string_view_is_lossless(tiny: Embedder, encoded, tiny_reference: dict[str, Any]) -> None:
    """The reference's decode-based view merges ids (Q9); ours keys each id by its own vocabulary piece."""
    index = {s["id"]: i for i, s in enumerate(tiny_reference["sentences"])}
    for sentence_id, reference_view in tiny_reference["convert_id_to_token"].items():
        vector = encoded.sparse[index[sentence_id]]
        view = vector.to_token_weights(tiny.tokenizer)
        assert len(view) == len(vector)  # one key per id: nothing merged
        assert tiny.tokenizer.convert_tokens_to_ids(list(view)) == vector.indices.tolist()
        # every reference key is the decoded form of one of our pieces, with the max weight among them
        decoded: dict[str, float] = {}
        for piece, weight in view.items():
            text = tiny.tokenizer.convert_tokens_to_string([piece]).strip()
            decoded.setdefault(text, weight)
        assert set(reference_view) == set(decoded)
