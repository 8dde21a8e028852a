"""`POST /v1/rerank` on a live server: the Cohere / Jina / TEI shape, equality with `Reranker.score`, merged
batches of concurrent requests, the API key and limits, and one-line 4xx errors."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.conftest import TINY_RERANKER
from tests.serving.conftest import API_KEY, TEXTS, error_of, metric
from trivec import Embedder
from trivec.inference.reranker import Reranker
from trivec.serving import ServerConfig, ServerThread, ServingLimits, create_app

LIMITS = ServingLimits(max_texts_per_request=16, max_tokens_per_text=64, max_body_bytes=64 * 1024)
QUERY = "What is BGE M3?"
DOCS = [t for t in TEXTS if t != QUERY]


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker.from_pretrained(TINY_RERANKER, device="cpu")


@pytest.fixture(scope="module")
def server(tiny: Embedder, reranker: Reranker) -> Iterator[ServerThread]:
    config = ServerConfig(model="tiny-m3", reranker=str(TINY_RERANKER), api_key=API_KEY, limits=LIMITS)
    with ServerThread(create_app(tiny, config, reranker=reranker)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as http:
        yield http


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x.astype(np.float64)))


def test_rerank_orders_documents_by_the_cross_encoder(client: httpx.Client, reranker: Reranker) -> None:
    expected = _sigmoid(reranker.score([(QUERY, d) for d in DOCS]))
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCS, "model": "whatever"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny-reranker" and body["object"] == "rerank"
    results = body["results"]
    assert [r["index"] for r in results] == np.argsort(-expected, kind="stable").tolist()
    for r in results:
        assert set(r) == {"index", "relevance_score"}
        assert abs(r["relevance_score"] - expected[r["index"]]) <= 1e-6
    assert body["usage"]["total_tokens"] == sum(
        len(ids) for ids in reranker.tokenize_pairs([(QUERY, d) for d in DOCS]).input_ids
    )


def test_top_n_documents_and_raw_scores(client: httpx.Client, reranker: Reranker) -> None:
    raw = reranker.score([(QUERY, d) for d in DOCS])
    body = client.post(
        "/rerank",
        json={
            "query": QUERY,
            "documents": [{"text": d} for d in DOCS],
            "top_n": 2,
            "return_documents": True,
            "raw_scores": True,
        },
    ).json()
    assert len(body["results"]) == 2
    for r in body["results"]:
        assert r["document"] == {"text": DOCS[r["index"]]}
        assert abs(r["relevance_score"] - float(raw[r["index"]])) <= 1e-5
    # TEI's names: texts, return_text; top_n above the number of documents returns them all
    tei = client.post(
        "/v1/rerank", json={"query": QUERY, "texts": DOCS, "return_text": True, "top_n": 99}
    ).json()
    assert sorted(r["index"] for r in tei["results"]) == list(range(len(DOCS)))


def test_concurrent_requests_get_their_own_scores(client: httpx.Client, reranker: Reranker) -> None:
    queries = [QUERY, "Hello", "北京", "Fuchs", "", "BM25"] * 3

    def ask(query: str) -> list[float]:
        body = client.post("/v1/rerank", json={"query": query, "documents": DOCS, "raw_scores": True}).json()
        scores = [0.0] * len(DOCS)
        for r in body["results"]:
            scores[r["index"]] = r["relevance_score"]
        return scores

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, queries))
    for query, got in zip(queries, answers, strict=True):
        np.testing.assert_allclose(got, reranker.score([(query, d) for d in DOCS]), atol=1e-5)


def test_health_names_the_reranker_and_metrics_count_it(server: ServerThread, client: httpx.Client) -> None:
    body = httpx.get(f"{server.url}/health").json()
    assert body["reranker"]["model"] == "tiny-reranker" and body["reranker"]["max_length"] == 512
    text = client.get("/metrics").text
    assert metric(text, "trivec_requests_total", endpoint="/v1/rerank", status="200") >= 1


def test_the_api_key_is_required(server: ServerThread) -> None:
    response = httpx.post(f"{server.url}/v1/rerank", json={"query": QUERY, "documents": DOCS})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"query": QUERY, "documents": []}, 422, "documents must not be empty"),
        ({"query": QUERY}, 422, "documents"),
        ({"documents": DOCS}, 422, "query"),
        ({"query": QUERY, "documents": "one string"}, 422, "documents must be a list of strings"),
        ({"query": QUERY, "documents": ["a", 3]}, 422, "documents[1] is a number"),
        ({"query": QUERY, "documents": DOCS, "top_n": 0}, 422, "top_n"),
        ({"query": QUERY, "documents": ["d"] * 17}, 413, "17 texts in one request"),
    ],
)
def test_bad_requests_are_one_line_errors(client: httpx.Client, body, status: int, needle: str) -> None:
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == status, response.text
    message = error_of(response)["message"]
    assert needle in message and "\n" not in message


def test_without_a_reranker_the_endpoint_says_how_to_get_one(tiny: Embedder) -> None:
    with ServerThread(create_app(tiny, ServerConfig(model="tiny-m3"))) as running:
        response = httpx.post(f"{running.url}/v1/rerank", json={"query": QUERY, "documents": DOCS})
        assert response.status_code == 404
        assert "--reranker" in error_of(response)["message"]
        assert httpx.get(f"{running.url}/health").json()["reranker"] is None
