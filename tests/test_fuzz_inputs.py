"""Hypothesis fuzzing of what users hand trivec (issue #20): the JSONL / text readers, and the server's request
bodies. Whatever the input — arbitrary bytes, any JSON, lone surrogates, wrong types, huge numbers — a reader
returns its rows or raises `InputError` (never another exception), and the server answers 200 or a 4xx JSON
error in OpenAI's shape (never a 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA
from trivec import Embedder, InputError
from trivec.io import iter_jsonl, read_pairs, read_records, read_texts
from trivec.retrieval import Index, read_corpus

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# text with everything Python strings can hold, lone surrogates included (json.dumps writes them as escapes)
ANY_TEXT = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=10,
)
FIELDS = st.sampled_from(["id", "text", "title", "metadata", "query", "passage", "other"])
ROWS = st.lists(st.dictionaries(FIELDS, JSON_VALUES, max_size=5) | JSON_VALUES, max_size=6)


def jsonl(rows: list[Any], raw_lines: list[bytes]) -> bytes:
    lines = [json.dumps(r).encode() for r in rows] + raw_lines
    return b"\n".join(lines) + b"\n"


READERS = {
    "iter_jsonl": lambda p: list(iter_jsonl(p)),
    "read_texts": read_texts,
    "read_records": read_records,
    "read_pairs": read_pairs,
    "read_corpus": read_corpus,
}


@pytest.mark.parametrize("reader", list(READERS))
@FUZZ
@given(rows=ROWS, raw=st.lists(st.binary(max_size=30), max_size=3))
def test_jsonl_readers_return_rows_or_raise_input_error(
    tmp_path: Path, reader: str, rows: list, raw: list
) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(jsonl(rows, raw))
    try:
        out = READERS[reader](path)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for item in out if isinstance(out, list) else []:  # what comes back is text, encodable as UTF-8
        for value in item if isinstance(item, tuple) else [getattr(item, "text", item)]:
            if isinstance(value, str):
                value.encode("utf-8")


@FUZZ
@given(data=st.binary(max_size=200))
def test_text_files_read_or_raise_input_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.txt"
    path.write_bytes(data)
    try:
        texts = read_texts(path)
    except InputError:
        return
    assert all(isinstance(t, str) for t in texts)


# ---------------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from trivec.serving import ServerConfig, ServingLimits, create_app
    from trivec.serving.search import IndexSearcher

    path = tmp_path_factory.mktemp("fuzz-server") / "ix"
    with Index.create(path, model=tiny, max_length=64) as index:
        index.add(read_corpus(DATA / "cranfield" / "corpus.jsonl")[:20])
    limits = ServingLimits(max_texts_per_request=16, max_tokens_per_text=256)
    app = create_app(tiny, ServerConfig(model="tiny", limits=limits), IndexSearcher.open(path, tiny))
    with TestClient(app, raise_server_exceptions=False) as running:
        yield running


ENDPOINTS = ["/v1/embeddings", "/encode", "/score", "/search"]
KEYS = st.sampled_from(
    [
        "input", "texts", "query", "queries", "passages", "pairs", "dense", "sparse", "colbert", "modes",
        "weights", "top_k", "mode", "fusion", "candidates", "max_length", "truncate", "mcls", "prompt",
        "prompt_name", "input_type", "dimensions", "encoding_format", "query_prompt", "document_prompt",
        "sparse_tokens", "model",
    ]
)  # fmt: skip
VALUES = st.one_of(
    JSON_VALUES,
    st.lists(ANY_TEXT, min_size=1, max_size=3),
    st.lists(st.tuples(ANY_TEXT, ANY_TEXT).map(list), min_size=1, max_size=2),
    st.sampled_from(
        ["dense", "sparse", "colbert", "hybrid", "rrf", "weighted", "query", "document", "base64"]
    ),
    st.integers(min_value=-5, max_value=3000),
)
BODIES = st.dictionaries(KEYS, VALUES, max_size=5)


def check_answer(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code != 200:
        error = response.json()["error"]
        assert (
            error["code"] == response.status_code and error["message"] and "Traceback" not in error["message"]
        )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@FUZZ
@given(body=BODIES)
def test_json_bodies_get_200_or_a_4xx_never_a_500(client: Any, endpoint: str, body: dict) -> None:
    content = json.dumps(body).encode()  # lone surrogates travel as \\ud800 escapes, as a client sends them
    check_answer(client.post(endpoint, content=content, headers={"content-type": "application/json"}))


TEXTS = st.lists(ANY_TEXT, min_size=1, max_size=4)
NEAR_VALID = {  # the right shape with fuzzed values: these reach the tokenizer, the encoder and the index
    "/v1/embeddings": st.fixed_dictionaries(
        {"input": TEXTS}, optional={"dimensions": st.integers(-2, 100), "input_type": ANY_TEXT}
    ),
    "/encode": st.fixed_dictionaries(
        {"texts": TEXTS},
        optional={
            "sparse": st.booleans(),
            "colbert": st.booleans(),
            "mcls": st.booleans(),
            "truncate": st.booleans(),
            "max_length": st.integers(-1, 300),
            "prompt": ANY_TEXT,
            "sparse_tokens": st.booleans(),
        },
    ),
    "/score": st.fixed_dictionaries(
        {"query": ANY_TEXT, "passages": TEXTS},
        optional={
            "weights": st.lists(st.floats(-1, 2), max_size=4),
            "modes": st.lists(st.sampled_from(["dense", "sparse", "colbert", "x"]), max_size=3),
        },
    ),
    "/search": st.fixed_dictionaries(
        {"query": ANY_TEXT},
        optional={
            "top_k": st.integers(-1, 50),
            "mode": st.sampled_from(["dense", "sparse", "colbert", "hybrid", "x"]),
            "fusion": st.sampled_from(["weighted", "rrf", "zscore", "auto", None, "x"]),
            "candidates": st.integers(-1, 200),
            "weights": st.lists(st.floats(-1, 2), max_size=4),
            "query_prompt": ANY_TEXT,
        },
    ),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_near_valid_bodies_get_200_or_a_4xx_never_a_500(client: Any, endpoint: str, data: Any) -> None:
    body = data.draw(NEAR_VALID[endpoint])
    content = json.dumps(body).encode()
    check_answer(client.post(endpoint, content=content, headers={"content-type": "application/json"}))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@FUZZ
@given(raw=st.binary(max_size=120), kind=st.sampled_from(["application/json", "text/plain", ""]))
def test_arbitrary_bytes_get_a_4xx_never_a_500(client: Any, endpoint: str, raw: bytes, kind: str) -> None:
    headers = {"content-type": kind} if kind else {}
    check_answer(client.post(endpoint, content=raw, headers=headers))
