"""Dynamic batching: merging, budgets, the bounded queue, draining on close — and 503 over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.serving.conftest import TEXTS, error_of, metric
from trivec import Embedder
from trivec.errors import InputError, UnsupportedOutputError
from trivec.serving import (
    DynamicBatcher,
    EncodeSpec,
    QueueFullError,
    ServerConfig,
    ServerThread,
    ServingLimits,
    ShuttingDownError,
    create_app,
)
from trivec.serving.metrics import ServerMetrics

DENSE = EncodeSpec(dense=True, max_length=64)
ALL = EncodeSpec(dense=True, sparse=True, colbert=True, max_length=64)


def observed(histogram: object) -> list[float]:
    """[count, sum] of an unlabelled histogram."""
    samples = {s.name: s.value for metric in histogram.collect() for s in metric.samples}  # type: ignore[attr-defined]
    name = next(n for n in samples if n.endswith("_count"))
    return [samples[name], samples[name.replace("_count", "_sum")]]


def total(counter: object) -> float:
    """The value of an unlabelled counter."""
    return next(
        s.value
        for metric in counter.collect()  # type: ignore[attr-defined]
        for s in metric.samples
        if s.name.endswith("_total")
    )


def make(embedder: Embedder, **limits: object) -> tuple[DynamicBatcher, ServerMetrics]:
    metrics = ServerMetrics()
    return DynamicBatcher(embedder, ServingLimits(**limits), metrics), metrics  # type: ignore[arg-type]


def test_waiting_requests_with_equal_specs_share_one_batch(tiny: Embedder) -> None:
    batcher, metrics = make(tiny, max_wait_ms=0)
    groups = [TEXTS[:2], TEXTS[2:5], TEXTS[5:]]
    futures = [batcher.submit(texts, ALL, tokens=10) for texts in groups]
    other = batcher.submit(["different spec"], DENSE, tokens=5)
    assert batcher.queued_texts == len(TEXTS) + 1 and batcher.queued_requests == 4
    batcher.start()  # all four were waiting: the three with equal specs merge, the fourth runs alone
    results = [f.result(timeout=60) for f in futures]
    assert other.result(timeout=60).dense is not None
    assert batcher.close(timeout=60)
    assert observed(metrics.batch_requests) == [2, 4]  # two batches: 3 requests + 1
    for texts, result in zip(groups, results, strict=True):
        alone = tiny.encode(texts, sparse=True, colbert=True, max_length=64)
        assert result.num_tokens == alone.num_tokens
        np.testing.assert_allclose(result.dense, alone.dense, atol=1e-5)
        for got, want in zip(result.sparse, alone.sparse, strict=True):
            assert got.indices.tolist() == want.indices.tolist()
            np.testing.assert_allclose(got.values, want.values, atol=1e-5)
        for got, want in zip(result.colbert, alone.colbert, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_no_merging_and_token_budget_split_batches(tiny: Embedder) -> None:
    solo, solo_metrics = make(tiny, dynamic_batching=False)
    futures = [solo.submit([t], DENSE, tokens=8) for t in TEXTS[:3]]
    solo.start()
    assert all(f.result(timeout=60).dense.shape == (1, 64) for f in futures)
    solo.close(timeout=60)
    assert observed(solo_metrics.batch_requests) == [3, 3]

    budget, budget_metrics = make(tiny, batch_tokens=20, max_wait_ms=0)
    futures = [budget.submit(["x"], DENSE, tokens=8) for _ in range(5)]  # 8+8 fit in 20, a third does not
    budget.start()
    assert all(f.result(timeout=60).dense is not None for f in futures)
    budget.close(timeout=60)
    assert observed(budget_metrics.batch_requests) == [3, 5]  # 2 + 2 + 1


def test_full_queue_refuses_and_close_drains_then_refuses(tiny: Embedder) -> None:
    batcher, metrics = make(tiny, max_texts_per_request=4, queue_size=4)
    first = batcher.submit(TEXTS[:3], DENSE, tokens=30)
    with pytest.raises(QueueFullError, match="queue is full \\(3 of 4 texts waiting; this request has 2\\)"):
        batcher.submit(TEXTS[3:5], DENSE, tokens=10)
    cancelled = batcher.submit(["cancelled"], DENSE, tokens=3)
    assert cancelled.cancel()
    batcher.start()
    assert batcher.close(timeout=60)  # drains what was queued before stopping
    assert first.result(timeout=0).dense.shape == (3, 64)
    assert cancelled.cancelled()
    with pytest.raises(ShuttingDownError):
        batcher.submit(["late"], DENSE, tokens=3)
    assert observed(metrics.batch_requests)[0] == 1 and total(metrics.rejected) == 2


def test_errors_reach_every_request_and_calls_run_alone(minilm: Embedder) -> None:
    batcher, _ = make(minilm, max_wait_ms=0)
    sparse = EncodeSpec(dense=False, sparse=True, max_length=64)
    bad = [batcher.submit(["a"], sparse, tokens=3), batcher.submit(["b"], sparse, tokens=3)]
    call = batcher.submit_call(lambda model: model.score("q", ["p1", "p2"]), size=3, tokens=9)
    good = batcher.submit(["fine"], DENSE, tokens=3)
    batcher.start()
    for future in bad:
        with pytest.raises(UnsupportedOutputError, match="no sparse head"):
            future.result(timeout=60)
    assert call.result(timeout=60)["dense"].shape == (2,)
    assert good.result(timeout=60).dense.shape == (1, 384)
    assert batcher.close(timeout=60) and not batcher.alive


# ---------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def slow_server(tiny: Embedder) -> Iterator[ServerThread]:
    """A tiny queue (4 texts) and a long merge window, so a waiting request holds the queue for a while."""
    limits = ServingLimits(max_texts_per_request=4, queue_size=4, max_wait_ms=2500, max_tokens_per_text=64)
    with ServerThread(create_app(tiny, ServerConfig(model="tiny", limits=limits))) as running:
        yield running


def _wait_for_queue(url: str, texts: int) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/health").json()["queue"]["texts"] != texts:
        assert time.monotonic() < deadline, "the request never reached the queue"
        time.sleep(0.01)


def test_full_queue_is_503_with_retry_after(slow_server: ServerThread) -> None:
    url = slow_server.url
    holder: dict[str, httpx.Response] = {}
    thread = threading.Thread(
        target=lambda: holder.setdefault(
            "r", httpx.post(f"{url}/v1/embeddings", json={"input": TEXTS[:4]}, timeout=60)
        )
    )
    thread.start()
    _wait_for_queue(url, 4)
    refused = httpx.post(f"{url}/v1/embeddings", json={"input": "one more"}, timeout=60)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "queue is full" in error_of(refused)["message"]
    thread.join(60)
    assert holder["r"].status_code == 200 and len(holder["r"].json()["data"]) == 4
    text = httpx.get(f"{url}/metrics").text
    assert metric(text, "trivec_requests_total", endpoint="/v1/embeddings", status="503") == 1
    assert metric(text, "trivec_queue_rejected_total") == 1


def test_concurrent_http_requests_merge_into_one_batch(slow_server: ServerThread, tiny: Embedder) -> None:
    url = slow_server.url
    before = metric(httpx.get(f"{url}/metrics").text, "trivec_batch_requests_sum")
    batches_before = metric(httpx.get(f"{url}/metrics").text, "trivec_batch_requests_count")
    groups = [TEXTS[:2], TEXTS[2:4]]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": groups[0]}, timeout=60)
        _wait_for_queue(url, 2)
        second = pool.submit(httpx.post, f"{url}/v1/embeddings", json={"input": groups[1]}, timeout=60)
        responses = [first.result(), second.result()]
    for texts, response in zip(groups, responses, strict=True):
        assert response.status_code == 200
        got = np.array([d["embedding"] for d in response.json()["data"]])
        np.testing.assert_allclose(got, tiny.encode(texts, max_length=64).dense, atol=1e-5)
    text = httpx.get(f"{url}/metrics").text
    assert metric(text, "trivec_batch_requests_count") - batches_before == 1  # one batch …
    assert metric(text, "trivec_batch_requests_sum") - before == 2  # … of both requests


@pytest.mark.parametrize(("rejoin_ms", "expected"), [(2000.0, 2), (0.0, 1)])
def test_under_load_a_batch_waits_for_answered_clients_to_rejoin(
    tiny: Embedder, rejoin_ms: float, expected: int
) -> None:
    """A request already waiting when the encoder came free is under load: the batch then waits up to
    rejoin_wait_ms for more (and not at all with 0), instead of leaving at once half full."""
    batcher, _ = make(tiny, max_wait_ms=0, rejoin_wait_ms=rejoin_ms, batch_tokens=100)
    batcher.submit(TEXTS[:1], DENSE, tokens=10)
    batcher._free_since = time.monotonic() + 0.001  # the encoder came free after that request queued
    late = threading.Timer(0.2, lambda: batcher.submit(TEXTS[1:2], DENSE, tokens=90))
    late.start()
    try:
        jobs = batcher._take()
    finally:
        late.join()
    assert jobs is not None and len(jobs) == expected


def test_a_request_at_an_idle_encoder_waits_only_max_wait(tiny: Embedder) -> None:
    batcher, _ = make(tiny, max_wait_ms=0, rejoin_wait_ms=5000.0)
    batcher.submit(TEXTS[:1], DENSE, tokens=10)  # arrived after the encoder was last free: no rejoin wait
    started = time.monotonic()
    jobs = batcher._take()
    assert jobs is not None and len(jobs) == 1 and time.monotonic() - started < 1.0


@pytest.mark.parametrize("name", ["max_wait_ms", "rejoin_wait_ms"])
@pytest.mark.parametrize("value", [-1.0, float("nan")])
def test_negative_or_nan_waits_are_refused(name: str, value: float) -> None:
    with pytest.raises(InputError, match=f"{name} must be between 0 and 60000 ms"):
        ServingLimits(**{name: value}).validate()  # type: ignore[arg-type]
