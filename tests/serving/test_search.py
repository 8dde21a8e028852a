"""`POST /search` on a live server with an index built from real documents (tiny-m3: all three modes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import DATA
from tests.serving.conftest import TINY, error_of
from trivec import Embedder
from trivec.errors import InputError
from trivec.models.weights import DEFAULT_WEIGHTS
from trivec.retrieval import Index, ModelMismatchError
from trivec.serving import ServerConfig, ServerThread, build_app, create_app
from trivec.serving.search import IndexSearcher

QUERIES = [
    "what similarity laws must be obeyed when constructing aeroelastic models",
    "boundary layer transition",
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder) -> Path:
    lines = (DATA / "cranfield" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:120]
    path = tmp_path_factory.mktemp("search") / "cranfield"
    with Index.create(path, model=tiny) as index:
        index.add([json.loads(line) for line in lines])
        index.save()
    return path


@pytest.fixture(scope="module")
def server(index_dir: Path, tiny: Embedder) -> Iterator[ServerThread]:
    app = create_app(tiny, ServerConfig(model="tiny"), IndexSearcher.open(index_dir, tiny))
    with ServerThread(app) as running:
        yield running


@pytest.fixture(scope="module")
def direct(index_dir: Path, tiny: Embedder) -> Iterator[Index]:
    with Index.open(index_dir, model=tiny) as index:
        yield index


def same_hits(got: list[dict], want: list) -> None:
    assert [h["id"] for h in got] == [h.id for h in want]
    np.testing.assert_allclose([h["score"] for h in got], [h.score for h in want], atol=1e-5)
    for g, w in zip(got, want, strict=True):
        assert set(g["scores"]) == set(w.scores) and g["doc_id"] == w.doc_id and g["text"] == w.text


def test_the_request_accepts_every_fusion_the_index_has() -> None:
    """The request model spells the fusion names out (it stays light to import); they are the index's."""
    from typing import get_args

    from trivec.retrieval.fusion import FUSIONS
    from trivec.serving.schemas import SearchRequest

    literal, none = get_args(SearchRequest.model_fields["fusion"].annotation)  # Literal[...] | None
    assert get_args(literal) == FUSIONS
    assert none is type(None) and SearchRequest.model_fields["fusion"].default is None  # None: the model's


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mode": "dense"},
        {"mode": "sparse", "top_k": 3},
        {"mode": "colbert"},
        {"mode": "hybrid", "fusion": "rrf", "weights": [1, 0.3, 1], "candidates": 50},
        {"mode": "hybrid", "fusion": "zscore"},
        {"query_prompt": "Represent this query: "},
    ],
)
def test_search_equals_index_search(server: ServerThread, direct: Index, options: dict) -> None:
    response = httpx.post(f"{server.url}/search", json={"query": QUERIES[0], **options}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    arguments = {"prompt" if k == "query_prompt" else k: v for k, v in options.items()}
    want = direct.search(QUERIES[0], **{"top_k": 10, **arguments})[0]
    assert len(body["results"]) == len(want) > 0
    same_hits(body["results"], want)
    assert body["usage"]["prompt_tokens"] > 0


def test_search_many_queries(server: ServerThread, direct: Index) -> None:
    body = httpx.post(f"{server.url}/search", json={"queries": QUERIES, "top_k": 5}, timeout=60).json()
    want = direct.search(QUERIES, top_k=5)
    assert len(body["results"]) == 2
    for got, expected in zip(body["results"], want, strict=True):
        same_hits(got, expected)


def test_health_describes_the_index(server: ServerThread) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["fusion"] == {
        "method": "weighted",
        "weights": DEFAULT_WEIGHTS,
        "spreads": None,
        "weights_by_language": {},
    }
    index = health["index"]
    assert index["documents"] == 120 and index["modes"] == ["dense", "sparse", "colbert"]
    assert index["backend"] == "embedded"


@pytest.mark.parametrize(
    ("payload", "needle", "param"),
    [
        ({"query": "x", "mode": "bm25"}, "mode", "mode"),
        ({"query": "x", "fusion": "max"}, "fusion", "fusion"),
        ({"query": "x", "top_k": 0}, "top_k", "top_k"),
        ({"query": "x", "queries": ["y"]}, "not both", None),
        ({"query": "x", "weights": [1, 2]}, "weights need 3 numbers", None),
        ({"query": "x", "mode": "hybrid", "weights": [0, 0, 0]}, "is 0", None),
        ({"query": "x", "fusion": "auto"}, "auto fusion needs the model's calibrated score spreads", None),
        ({"query": "x", "k": 3}, "k: Extra inputs are not permitted", "k"),
    ],
)
def test_bad_search_requests_are_422(
    server: ServerThread, payload: dict, needle: str, param: str | None
) -> None:
    response = httpx.post(f"{server.url}/search", json=payload, timeout=60)
    assert response.status_code == 422, response.text
    assert needle in error_of(response)["message"]
    assert error_of(response)["param"] == param  # the field at fault, as OpenAI's errors name it


def test_serving_an_index_without_a_model_loads_the_index_model(index_dir: Path) -> None:
    app = build_app(ServerConfig(model=None, index=index_dir))
    with ServerThread(app) as running:
        health = httpx.get(f"{running.url}/health").json()
        assert health["model"] == Path(TINY).name and health["outputs"] == ["dense", "sparse", "colbert"]
        hits = httpx.post(f"{running.url}/search", json={"query": QUERIES[1], "top_k": 2}, timeout=60).json()
        assert len(hits["results"]) == 2


def test_an_index_of_another_model_is_refused(index_dir: Path, minilm: Embedder) -> None:
    with pytest.raises(ModelMismatchError, match="was built with model"):
        IndexSearcher.open(index_dir, minilm)


@pytest.mark.parametrize("threads", [1, 2])
def test_waiting_searches_that_ask_the_same_are_searched_as_one_batch(
    index_dir: Path, tiny: Embedder, direct: Index, threads: int
) -> None:
    """Searches queued while the search threads are busy: those with equal settings go through one
    `search_vectors` call (in queue order; a thread's share of them when another thread waits too),
    another setting on its own — each request gets its own hits, equal to `Index.search`; an error reaches
    every request of its batch."""
    from trivec.serving.schemas import SearchRequest

    searcher = IndexSearcher.open(index_dir, tiny, threads=threads)
    batches: list[int] = []
    original = searcher.index.search_vectors

    def recording(encoded, *args, **kwargs):  # type: ignore[no-untyped-def]
        batches.append(len(encoded))
        return original(encoded, *args, **kwargs)

    searcher.index.search_vectors = recording  # type: ignore[method-assign]
    texts = [*QUERIES, "heat transfer", "supersonic flow over a cone"]
    requests = [SearchRequest(query=texts[0], top_k=4), SearchRequest(query=texts[1], top_k=7)]
    requests += [SearchRequest(queries=texts[2:], top_k=4), SearchRequest(query=texts[1], weights=[0, 0, 0])]
    try:
        with searcher._cond:  # no thread can take work until all four are queued
            futures = [
                searcher.submit(tiny.encode(r.texts(), dense=True, sparse=True, colbert=True), r)
                for r in requests
            ]
        for request, future in zip(requests[:3], futures[:3], strict=True):
            got = future.result(timeout=60)
            want = direct.search(request.texts(), top_k=request.top_k)
            assert len(got) == len(want)
            for hits, expected in zip(got, want, strict=True):
                same_hits(hits, expected)
        with pytest.raises(InputError, match="weight"):
            futures[3].result(timeout=60)
        if threads == 1:  # the two top-4 requests (1 + 2 queries) together
            assert sorted(batches) == [1, 1, 3]
        else:  # together, or split between the two threads when both were waiting
            assert sorted(batches) in ([1, 1, 3], [1, 1, 1, 2])
    finally:
        searcher.close()


def test_an_error_reaches_only_its_batch_and_every_search_thread_goes_on(
    index_dir: Path, tiny: Embedder
) -> None:
    from trivec.serving.schemas import SearchRequest

    searcher = IndexSearcher.open(index_dir, tiny, threads=2)
    original = searcher.index.search_vectors

    def failing_at_top_4(encoded, top_k, *args, **kwargs):  # type: ignore[no-untyped-def]
        # keyed on top_k, not on the batch size: the later top-2 requests may merge into a batch of two
        if top_k == 4:
            raise RuntimeError("this batch failed")
        return original(encoded, top_k, *args, **kwargs)

    searcher.index.search_vectors = failing_at_top_4  # type: ignore[method-assign]
    # another top_k: never merged with the failing request
    requests = [SearchRequest(query=QUERIES[0], top_k=3), SearchRequest(queries=QUERIES, top_k=4)]
    try:
        with searcher._cond:
            futures = [
                searcher.submit(tiny.encode(r.texts(), dense=True, sparse=True, colbert=True), r)
                for r in requests
            ]
        assert len(futures[0].result(timeout=60)) == 1
        with pytest.raises(RuntimeError, match="this batch failed"):
            futures[1].result(timeout=60)
        again = [SearchRequest(query=q, top_k=2) for q in (*QUERIES, "heat transfer")]
        answers = [
            searcher.submit(tiny.encode(r.texts(), dense=True, sparse=True, colbert=True), r) for r in again
        ]
        assert [len(a.result(60)[0]) for a in answers] == [2, 2, 2]
        assert len(searcher._workers) == 2 and searcher.alive
    finally:
        assert searcher.close(30)
    assert not searcher.alive


def test_a_request_in_a_language_fuses_with_the_models_weights_for_it(
    index_dir: Path, tiny_copy: Path
) -> None:
    """`language` picks the model's weights for it (`fusion_weights_by_language`) in /search and /score,
    unless `weights` are given; an unknown code is a 422 naming the field."""
    indonesian = {"dense": 0.8, "sparse": 0.05, "colbert": 0.15}
    (tiny_copy / "trivec_config.json").write_text(
        json.dumps({"fusion_weights_by_language": {"id": indonesian}}), encoding="utf-8"
    )
    model = Embedder.from_pretrained(tiny_copy, device="cpu")
    app = create_app(model, ServerConfig(model="tiny"), IndexSearcher.open(index_dir, model))
    with ServerThread(app) as running, Index.open(index_dir, model=model) as direct:

        def search(**options: object) -> list[dict]:
            response = httpx.post(f"{running.url}/search", json={"query": QUERIES[1], **options}, timeout=60)
            assert response.status_code == 200, response.text
            return response.json()["results"]

        same_hits(search(language="ID"), direct.search(QUERIES[1], weights=indonesian)[0])
        same_hits(search(language="fr"), direct.search(QUERIES[1])[0])
        same_hits(search(language="id", weights=DEFAULT_WEIGHTS), direct.search(QUERIES[1])[0])
        assert search(language="id") != search()
        health = httpx.get(f"{running.url}/health").json()
        assert health["fusion"]["weights_by_language"] == {"id": indonesian}
        body = {"query": QUERIES[1], "passages": ["boundary layer", "supersonic flow"], "language": "id"}
        scores = httpx.post(f"{running.url}/score", json=body, timeout=60).json()
        want = model.score(QUERIES[1], body["passages"], weights=indonesian)["colbert+sparse+dense"]
        np.testing.assert_allclose(scores["scores"]["colbert+sparse+dense"], want, atol=1e-5)
        bad = {"/search": {"query": "x"}, "/score": body}
        for path, payload in bad.items():
            response = httpx.post(
                f"{running.url}{path}", json={**payload, "language": "indonesian"}, timeout=60
            )
            assert response.status_code == 422, response.text
            assert "unknown language code 'indonesian'" in error_of(response)["message"]
            assert "did you mean id" in error_of(response)["message"]
            assert error_of(response)["param"] == "language"


def test_searches_past_the_queue_size_are_refused_and_the_queue_frees_as_they_are_searched(
    index_dir: Path, tiny: Embedder
) -> None:
    """Queries waiting for a search thread are bounded like texts waiting for the encoder: one that does not
    fit is refused at once (`QueueFullError`, HTTP 503), not queued behind a slow search."""
    from trivec.serving.schemas import SearchRequest
    from trivec.serving.worker import QueueFullError

    searcher = IndexSearcher.open(index_dir, tiny, threads=1, queue_size=3)
    two = SearchRequest(queries=QUERIES, top_k=2)
    encoded = tiny.encode(two.texts(), dense=True, sparse=True, colbert=True)
    try:
        with searcher._cond:  # the thread cannot take the first search before the second arrives
            first = searcher.submit(encoded, two)
            with pytest.raises(QueueFullError, match=r"search queue is full \(2 of 3 queries waiting"):
                searcher.submit(encoded, two)
        assert len(first.result(timeout=60)) == 2
        assert len(searcher.submit(encoded, two).result(timeout=60)) == 2  # room again
    finally:
        searcher.close()


def test_a_server_bounds_its_search_queue_by_its_queue_size(index_dir: Path) -> None:
    from trivec.serving import ServingLimits

    app = build_app(ServerConfig(model=None, index=index_dir, limits=ServingLimits(queue_size=600)))
    assert app.state.trivec.index.queue_size == 600
