"""Prompts over HTTP: `input_type` / `prompt_name` choose the model's prompt; /score and /search use the roles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import DATA, TINY_PROMPTS
from tests.serving.conftest import error_of
from trivec import Embedder
from trivec.retrieval import Index
from trivec.serving import ServerConfig, ServerThread, create_app
from trivec.serving.search import IndexSearcher

TEXTS = ["what is bge m3", "Der schnelle braune Fuchs."]


@pytest.fixture(scope="module")
def prompted(tiny_prompted_dir: Path) -> Embedder:
    """tiny-m3 with e5's prompts, and `query` as the default prompt (applied when a request names none)."""
    return Embedder.from_pretrained(tiny_prompted_dir, device="cpu", default_prompt_name="query")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, prompted: Embedder) -> Path:
    lines = (DATA / "cranfield" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    path = tmp_path_factory.mktemp("prompted-search") / "ix"
    with Index.create(path, model=prompted, max_length=64) as index:
        index.add([json.loads(line) for line in lines])
    return path


@pytest.fixture(scope="module")
def server(prompted: Embedder, index_dir: Path) -> Iterator[ServerThread]:
    app = create_app(prompted, ServerConfig(model="tiny-prompted"), IndexSearcher.open(index_dir, prompted))
    with ServerThread(app) as running:
        yield running


def by_hand(embedder: Embedder, prefix: str, texts: list[str] = TEXTS) -> np.ndarray:
    dense = embedder.encode([prefix + t for t in texts], prompt="").dense
    assert dense is not None
    return dense


def test_health_lists_the_prompts(server: ServerThread) -> None:
    body = httpx.get(f"{server.url}/health").json()
    assert body["prompts"] == TINY_PROMPTS and body["default_prompt_name"] == "query"
    assert body["index"]["prompts"] == TINY_PROMPTS


@pytest.mark.parametrize(
    ("fields", "prefix"),
    [
        ({"input_type": "query"}, "query: "),
        ({"input_type": "document"}, "passage: "),
        ({"prompt_name": "document"}, "passage: "),
        ({}, "query: "),  # the default prompt, put before each text once
    ],
)
def test_embeddings_input_type(server: ServerThread, prompted: Embedder, fields: dict, prefix: str) -> None:
    response = httpx.post(f"{server.url}/v1/embeddings", json={"input": TEXTS, **fields}, timeout=60)
    assert response.status_code == 200, response.text
    got = np.array([d["embedding"] for d in response.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, by_hand(prompted, prefix), atol=1e-6)


def test_encode_prompt_name_prompt_and_errors(server: ServerThread, prompted: Embedder) -> None:
    for fields, prefix in (
        ({"input_type": "document"}, "passage: "),
        ({"prompt": "", "prompt_name": "query"}, ""),
    ):
        body = httpx.post(f"{server.url}/encode", json={"texts": TEXTS, **fields}, timeout=60).json()
        got = np.array([d["dense"] for d in body["data"]], dtype=np.float32)
        np.testing.assert_allclose(got, by_hand(prompted, prefix), atol=1e-6)
        tokens = sum(len(ids) for ids in prompted.tokenize([prefix + t for t in TEXTS]))
        assert body["usage"]["prompt_tokens"] == tokens  # the prompt's tokens count
    bad = httpx.post(f"{server.url}/v1/embeddings", json={"input": TEXTS, "input_type": "sts"}, timeout=60)
    assert bad.status_code == 422
    error = error_of(bad)
    assert "unknown prompt name 'sts'" in error["message"] and error["param"] == "prompt_name"


def test_score_gives_queries_and_passages_their_roles(server: ServerThread, prompted: Embedder) -> None:
    payload = {"query": TEXTS[0], "passages": TEXTS, "modes": ["dense"]}
    body = httpx.post(f"{server.url}/score", json=payload, timeout=60).json()
    q, p = by_hand(prompted, "query: ", TEXTS[:1]), by_hand(prompted, "passage: ")
    np.testing.assert_allclose(body["scores"]["dense"], p @ q[0], atol=1e-6)
    overridden = httpx.post(
        f"{server.url}/score", json={**payload, "query_prompt": "", "document_prompt": ""}, timeout=60
    ).json()
    q, p = by_hand(prompted, "", TEXTS[:1]), by_hand(prompted, "")
    np.testing.assert_allclose(overridden["scores"]["dense"], p @ q[0], atol=1e-6)


def test_search_uses_the_index_query_prompt(
    server: ServerThread, index_dir: Path, prompted: Embedder
) -> None:
    with Index.open(index_dir, model=prompted) as index:
        for fields, prompt in (({}, None), ({"query_prompt": ""}, "")):
            body = httpx.post(
                f"{server.url}/search",
                json={"query": "boundary layer", "mode": "dense", **fields},
                timeout=60,
            ).json()
            want = index.search("boundary layer", mode="dense", prompt=prompt)[0]
            assert [h["id"] for h in body["results"]] == [h.id for h in want]
            np.testing.assert_allclose(
                [h["score"] for h in body["results"]],
                [h.score for h in want],
                atol=1e-5,
            )


def test_a_prompts_tokens_carry_no_lexical_weight_and_the_server_agrees(
    server: ServerThread, prompted: Embedder
) -> None:
    """`passage: ` is in every document and `query: ` in every query: with weights of their own, every query
    matched every document (an empty one too) on `:`. They get none, whoever puts the prompt there; the same
    words in a text's own words keep theirs."""
    prompt_ids = set(prompted.tokenize(["passage:"])[0][1:-1])
    texts = ["", "see", "passage: see"]
    empty, plain, own = prompted.encode(texts, sparse=True, prompt_name="document").sparse or []
    assert empty.indices.size == 0 and not prompt_ids & set(plain.indices.tolist())
    assert prompt_ids & set(own.indices.tolist())  # the text's own "passage:" keeps its weights
    typed = prompted.encode(["passage: see"], sparse=True, prompt="").sparse or []
    assert prompt_ids & set(typed[0].indices.tolist())  # typed by the caller, no prompt: the text's words
    body = httpx.post(
        f"{server.url}/encode",
        json={"texts": texts, "prompt_name": "document", "sparse": True, "dense": False},
        timeout=60,
    ).json()
    for row, want in zip(body["data"], (empty, plain, own), strict=True):
        got = {int(k): v for k, v in zip(row["sparse"]["indices"], row["sparse"]["values"], strict=True)}
        assert got.keys() == set(want.indices.tolist())
