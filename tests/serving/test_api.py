"""Every endpoint and every error path of a live server (tiny-m3: all three outputs) over real HTTP."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.serving.conftest import API_KEY, TEXTS, error_of, metric
from trivec import Embedder
from trivec.inference import SparseVector
from trivec.serving import ServerConfig, ServerThread, ServingLimits, create_app

LIMITS = ServingLimits(max_texts_per_request=16, max_tokens_per_text=64, max_body_bytes=32 * 1024)


@pytest.fixture(scope="module")
def server(tiny: Embedder) -> Iterator[ServerThread]:
    config = ServerConfig(model="tiny-m3", api_key=API_KEY, limits=LIMITS)
    with ServerThread(create_app(tiny, config)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    ) as http:
        yield http


# ---------------------------------------------------------------------- success paths
def test_health_is_open_and_describes_the_model(server: ServerThread) -> None:
    response = httpx.get(f"{server.url}/health")  # no API key needed
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["model"] == "tiny-m3"
    assert body["outputs"] == ["dense", "sparse", "colbert"]
    assert body["dims"] == {"dense": 64, "colbert": 64}
    assert body["max_tokens_per_text"] == 64 and body["max_texts_per_request"] == 16
    assert body["queue"] == {"texts": 0, "requests": 0, "capacity_texts": LIMITS.queue_size}
    assert body["index"] is None


def test_embeddings_float_and_base64_equal_encode(client: httpx.Client, tiny: Embedder) -> None:
    expected = tiny.encode(TEXTS)
    floats = client.post("/v1/embeddings", json={"input": TEXTS, "model": "anything"})
    assert floats.status_code == 200, floats.text
    body = floats.json()
    assert body["object"] == "list" and body["model"] == "tiny-m3"
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    assert all(d["object"] == "embedding" for d in body["data"])
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected.dense, atol=1e-6)
    assert body["usage"] == {
        "prompt_tokens": sum(expected.num_tokens),
        "total_tokens": sum(expected.num_tokens),
    }

    packed = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64"}).json()
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed["data"]])
    np.testing.assert_array_equal(decoded, got)


def test_embeddings_single_string_and_dimensions(client: httpx.Client, tiny: Embedder) -> None:
    full = tiny.encode(["Hello"]).dense[0]
    body = client.post("/v1/embeddings", json={"input": "Hello", "dimensions": 16}).json()
    assert len(body["data"]) == 1
    vector = np.array(body["data"][0]["embedding"])
    assert vector.shape == (16,)
    np.testing.assert_allclose(vector, full[:16] / np.linalg.norm(full[:16]), atol=1e-6)
    assert abs(np.linalg.norm(vector) - 1) < 1e-6


def test_encode_all_outputs_equal_embedder(client: httpx.Client, tiny: Embedder) -> None:
    response = client.post(
        "/encode",
        json={"texts": TEXTS, "dense": True, "sparse": True, "colbert": True, "sparse_tokens": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    expected = tiny.encode(TEXTS, sparse=True, colbert=True)
    assert body["dims"] == {"dense": 64, "colbert": 64}
    assert body["usage"]["prompt_tokens"] == sum(expected.num_tokens)
    for item, i in zip(body["data"], range(len(TEXTS)), strict=True):
        assert item["index"] == i and item["num_tokens"] == expected.num_tokens[i]
        np.testing.assert_allclose(item["dense"], expected.dense[i], atol=1e-6)
        sparse = expected.sparse[i]
        assert item["sparse"]["indices"] == sparse.indices.tolist()
        np.testing.assert_allclose(item["sparse"]["values"], sparse.values, atol=1e-6)
        assert item["sparse"]["tokens"] == tiny.tokenizer.convert_ids_to_tokens(sparse.indices.tolist())
        colbert = np.array(item["colbert"], dtype=np.float32).reshape(-1, 64)
        np.testing.assert_allclose(colbert, expected.colbert[i], atol=1e-6)


def test_encode_prompt_sparse_only_base64(client: httpx.Client, tiny: Embedder) -> None:
    texts = ["what is m3", "北京"]
    body = client.post(
        "/encode",
        json={
            "input": texts,
            "dense": False,
            "colbert": True,
            "prompt": "Q: ",
            "encoding_format": "base64",
            "sparse": True,
        },
    ).json()
    expected = tiny.encode(texts, dense=False, sparse=True, colbert=True, prompt="Q: ")
    for item, sparse, colbert in zip(body["data"], expected.sparse, expected.colbert, strict=True):
        assert set(item) == {"index", "num_tokens", "sparse", "colbert"}
        assert SparseVector.from_dict(item["sparse"]).indices.tolist() == sparse.indices.tolist()
        rows = np.frombuffer(base64.b64decode(item["colbert"]), dtype="<f4").reshape(
            -1, body["dims"]["colbert"]
        )
        np.testing.assert_allclose(rows, colbert, atol=1e-6)


def test_encode_truncates_on_request(client: httpx.Client, tiny: Embedder) -> None:
    long_text = "retrieval " * 200
    cut = client.post("/encode", json={"texts": [long_text], "max_length": 32}).json()
    np.testing.assert_allclose(
        cut["data"][0]["dense"], tiny.encode([long_text], max_length=32).dense[0], atol=1e-6
    )
    assert cut["data"][0]["num_tokens"] == 32
    to_limit = client.post("/encode", json={"texts": [long_text], "truncate": True}).json()
    assert to_limit["data"][0]["num_tokens"] == 64  # the server's --max-tokens


def test_score_query_passages_and_pairs_equal_embedder(client: httpx.Client, tiny: Embedder) -> None:
    passages = [TEXTS[1], TEXTS[2], "BM25 is a bag-of-words retrieval function"]
    body = client.post("/score", json={"query": "What is BGE M3?", "passages": passages}).json()
    expected = tiny.score("What is BGE M3?", passages)
    assert set(body["scores"]) == set(expected)
    for mode, values in expected.items():
        np.testing.assert_allclose(body["scores"][mode], values, atol=1e-6)

    pairs = [["What is BGE M3?", TEXTS[1]], ["北京", TEXTS[2]]]
    weighted = client.post(
        "/score", json={"pairs": pairs, "modes": ["dense", "sparse"], "weights": {"dense": 1, "sparse": 0.3}}
    ).json()
    expected = tiny.score_pairs(
        [tuple(p) for p in pairs], modes=["dense", "sparse"], weights={"dense": 1, "sparse": 0.3}
    )
    assert set(weighted["scores"]) == {"dense", "sparse", "sparse+dense"}
    for mode, values in expected.items():
        np.testing.assert_allclose(weighted["scores"][mode], values, atol=1e-6)
    assert weighted["usage"]["prompt_tokens"] > 0


def test_metrics_count_requests_batches_and_tokens(client: httpx.Client) -> None:
    client.post("/v1/embeddings", json={"input": ["counted"]})
    client.post("/v1/embeddings", json={"input": []})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "trivec_requests_total", endpoint="/v1/embeddings", status="200") >= 1
    assert metric(text, "trivec_requests_total", endpoint="/v1/embeddings", status="422") >= 1
    assert metric(text, "trivec_request_duration_seconds_count", endpoint="/v1/embeddings") >= 2
    assert metric(text, "trivec_batch_texts_count") >= 1
    assert metric(text, "trivec_tokens_encoded_total") > 0
    assert metric(text, "trivec_texts_encoded_total") >= 1
    assert "trivec_queue_texts 0.0" in text
    assert metric(text, "trivec_queue_capacity_texts") == LIMITS.queue_size


# ---------------------------------------------------------------------- error paths
def test_missing_or_wrong_api_key_is_401(server: ServerThread) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}):
        response = httpx.post(f"{server.url}/v1/embeddings", json={"input": "x"}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in error_of(response)["message"]
    assert httpx.get(f"{server.url}/metrics").status_code == 401


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"input": ["a"] * 17}, "17 texts in one request; this server accepts at most 16"),
        ({"input": ["ok", "token " * 100]}, "input[1] has"),
    ],
)
def test_limits_on_texts_and_tokens_are_413(client: httpx.Client, payload: dict, needle: str) -> None:
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == 413
    assert needle in error_of(response)["message"]


def test_body_over_limit_is_413_by_length_and_while_streaming(
    client: httpx.Client, server: ServerThread
) -> None:
    big = json.dumps({"input": ["x" * 40_000]}).encode()
    response = client.post("/v1/embeddings", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "at most 32768 bytes" in error_of(response)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = client.post("/v1/embeddings", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "request body too large" in error_of(streamed)["message"]
    assert client.get("/health").status_code == 200  # the server is fine afterwards


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/v1/embeddings", {"input": [1, 2, 3]}, "token ids is not supported"),
        ("/v1/embeddings", {"input": [[1, 2], [3]]}, "token ids is not supported"),
        ("/v1/embeddings", {"input": []}, "input: input must not be empty"),
        ("/v1/embeddings", {"model": "m"}, "input: Field required"),
        ("/v1/embeddings", {"input": "x", "dimensions": 65}, "dimensions 65 is larger than the model's 64"),
        ("/v1/embeddings", {"input": "x", "dimensions": 0}, "dimensions"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ("/encode", {"texts": ["x"], "sprase": True}, "sprase: Extra inputs are not permitted"),
        ("/encode", {"texts": ["x"], "dense": False}, "ask for at least one output"),
        ("/encode", {"texts": ["x"], "max_length": 65}, "max_length 65 exceeds this server's limit of 64"),
        (
            "/encode",
            {"texts": ["x"], "max_length": 1e20},
            "max_length: the number is too large for a whole number",
        ),
        ("/encode", {"texts": "x", "is_query": True}, "is_query: Extra inputs are not permitted"),
        ("/encode", {"texts": "x", "input_type": "classification"}, "unknown prompt name 'classification'"),
        ("/v1/embeddings", {"input": "x", "input_type": 3}, "input_type"),
        ("/score", {"query": "q"}, "'query' and 'passages' go together"),
        ("/score", {"pairs": [["q", "p"]], "query": "q", "passages": ["p"]}, "not both"),
        ("/score", {"pairs": [["q", "p"]], "weights": [1, 2]}, "weights need 3 numbers"),
        ("/score", {"pairs": [["q", "p"]], "weights": {"lexical": 1}}, "unknown score mode"),
        (
            "/score",
            {"pairs": [["q", "p"]], "modes": ["dense", "sparse"], "weights": [0, 0, 1]},
            "no mode with a positive",
        ),
        ("/score", {"pairs": [["q", "p"]], "modes": ["bm25"]}, "modes.0"),
        ("/score", {"pairs": [["q"]]}, "pairs.0"),
    ],
)
def test_bad_requests_are_422_with_clear_messages(
    client: httpx.Client, path: str, payload: dict, needle: str
) -> None:
    response = client.post(path, json=payload)
    assert response.status_code == 422, response.text
    assert needle in error_of(response)["message"]


def test_malformed_json_and_missing_content_type_are_422(client: httpx.Client) -> None:
    bad = client.post("/encode", content=b'{"texts": [', headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and "not valid JSON" in error_of(bad)["message"]
    plain = client.post("/encode", content=b'{"texts": ["x"]}')
    assert plain.status_code == 422 and "Content-Type: application/json" in error_of(plain)["message"]


def test_search_without_index_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    search = client.post("/search", json={"query": "x"})
    assert search.status_code == 404 and "no index is loaded" in error_of(search)["message"]
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404 and "GET /v2/nothing" in error_of(missing)["message"]
    wrong = client.get("/encode")
    assert wrong.status_code == 405 and "method GET is not allowed" in error_of(wrong)["message"]


def test_dense_only_model_refuses_sparse_with_422(minilm: Embedder) -> None:
    with ServerThread(create_app(minilm, ServerConfig(model="minilm-m3"))) as running:
        response = httpx.post(f"{running.url}/encode", json={"texts": ["x"], "sparse": True})
        assert response.status_code == 422 and "has no sparse head" in error_of(response)["message"]
        scored = httpx.post(f"{running.url}/score", json={"pairs": [["q", "p"]], "modes": ["colbert"]})
        assert scored.status_code == 422 and "colbert" in error_of(scored)["message"]


def test_server_listens_on_loopback_only(server: ServerThread) -> None:
    assert server.host == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass


def test_many_concurrent_clients_each_get_their_own_vectors(server: ServerThread, tiny: Embedder) -> None:
    requests = [[f"request {i} text {j} " * (1 + (i + j) % 5) for j in range(1 + i % 4)] for i in range(24)]

    def post(texts: list[str]) -> np.ndarray:
        with httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
            response = http.post(f"{server.url}/v1/embeddings", json={"input": texts})
            assert response.status_code == 200, response.text
            return np.array([d["embedding"] for d in response.json()["data"]])

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(post, requests))
    flat = [t for texts in requests for t in texts]
    expected = tiny.encode(flat, max_length=64).dense
    np.testing.assert_allclose(np.concatenate(results), expected, atol=1e-5)
