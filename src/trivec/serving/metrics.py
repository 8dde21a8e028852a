"""Prometheus metrics of one server, in a registry of its own (several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# `*_created` timestamps double the output and no dashboard reads them
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


class ServerMetrics:
    """Request counts and latencies per endpoint, batch sizes, queue depth and tokens encoded."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "trivec_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "trivec_request_duration_seconds",
            "Time from request start to response end, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_texts = Histogram(
            "trivec_batch_texts", "Texts in one merged encoder batch", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "trivec_batch_requests",
            "Requests merged into one encoder batch",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "trivec_batch_tokens", "Tokens in one merged encoder batch", buckets=TOKEN_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "trivec_batch_duration_seconds",
            "Encoder time of one merged batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "trivec_queue_wait_seconds",
            "Time a request waited in the queue before the encoder took it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_texts = Gauge("trivec_queue_texts", "Texts waiting for the encoder", registry=r)
        self.queue_requests = Gauge("trivec_queue_requests", "Requests waiting for the encoder", registry=r)
        self.queue_capacity = Gauge("trivec_queue_capacity_texts", "Texts the queue can hold", registry=r)
        self.tokens = Counter("trivec_tokens_encoded", "Tokens run through the encoder", registry=r)
        self.texts = Counter("trivec_texts_encoded", "Texts run through the encoder", registry=r)
        self.rejected = Counter(
            "trivec_queue_rejected", "Requests refused because the queue was full or closing", registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)
