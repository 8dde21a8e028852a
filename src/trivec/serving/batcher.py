"""Dynamic batching: one worker thread owns the model and merges concurrent requests into shared batches.

Requests put their texts on a bounded queue and wait on a future. The worker takes the oldest request, lets
others with the same output settings join it up to a token budget (waiting at most `max_wait_ms` for them
after a request reaches an idle encoder, or `rejoin_wait_ms` after a batch when requests were already
waiting — the clients just answered usually send again within it), runs `Embedder.encode` once on the
merged texts, and hands each request its own slice of the result. The queue is bounded in texts: a request
that does not fit is refused at once (`QueueFullError`, HTTP 503) rather than piling up memory and latency.
`close()` refuses new work, lets the worker finish everything already queued, and joins it (the thread, the
queue and the shutdown are `trivec.serving.worker.MergingWorker`'s).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from trivec.inference import Embedder, EncodeResult
from trivec.serving.config import ServingLimits
from trivec.serving.metrics import ServerMetrics
from trivec.serving.worker import MergingWorker, QueueFullError, ShuttingDownError

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EncodeSpec:
    """What an encode request asks for; only requests with equal specs share a batch."""

    dense: bool = True
    sparse: bool = False
    colbert: bool = False
    max_length: int | None = None
    mcls: bool = False
    prompt: str = ""  # put before every text by the encoder (its tokens get no lexical weight)


@dataclass(eq=False)
class _Job:
    texts: list[str]
    tokens: int
    future: Future[Any]
    spec: EncodeSpec | None = None
    call: Callable[[Embedder], Any] | None = None
    size: int = 0
    enqueued: float = field(default_factory=time.monotonic)


class DynamicBatcher(MergingWorker[_Job]):
    """A bounded queue in front of one encoder thread that merges requests into token-budget batches."""

    thread_name = "trivec-encoder"

    def __init__(
        self, embedder: Embedder, limits: ServingLimits, metrics: ServerMetrics | None = None
    ) -> None:
        limits.validate()
        super().__init__()
        self.embedder = embedder
        self.limits = limits
        self.metrics = metrics
        self._queued_texts = 0
        self._free_since = 0.0  # when the encoder last finished a batch (monotonic)
        if metrics is not None:
            metrics.queue_capacity.set(limits.queue_size)

    # ------------------------------------------------------------------ queue state
    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    @property
    def queued_requests(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ submission
    def submit(self, texts: Sequence[str], spec: EncodeSpec, tokens: int) -> Future[EncodeResult]:
        """Queue texts for encoding, as the request gave them: the encoder puts `spec.prompt` before each."""
        return self._enqueue(_Job(texts=list(texts), tokens=tokens, future=Future(), spec=spec))

    def submit_call(self, call: Callable[[Embedder], T], size: int, tokens: int) -> Future[T]:
        """Queue a job that uses the model as a whole (scoring, search); it runs alone, in queue order.

        size: the texts it will encode (counted against the queue); tokens: their token count.
        """
        return self._enqueue(_Job(texts=[], tokens=tokens, future=Future(), call=call, size=size))

    def _enqueue(self, job: _Job) -> Future[Any]:
        if job.spec is not None:
            job.size = len(job.texts)
        try:
            self._submit(job)
        except (ShuttingDownError, QueueFullError):
            self._count_rejected()
            raise
        return job.future

    def _admit(self, job: _Job) -> None:
        """Queue the job if its texts fit in the queue; `QueueFullError` if not."""
        if self._queued_texts + job.size > self.limits.queue_size:
            raise QueueFullError(
                f"the encoder queue is full ({self._queued_texts} of {self.limits.queue_size} texts "
                f"waiting; this request has {job.size}); retry shortly"
            )
        self._pending.append(job)
        self._queued_texts += job.size
        self._update_gauges()

    def _count_rejected(self) -> None:
        if self.metrics is not None:
            self.metrics.rejected.inc()

    def _update_gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_texts.set(self._queued_texts)
            self.metrics.queue_requests.set(len(self._pending))

    # ------------------------------------------------------------------ worker
    def _take(self) -> list[_Job] | None:
        """The next batch (None once closed and drained), each job's time in the queue observed."""
        jobs = super()._take()
        if jobs is not None and self.metrics is not None:
            now = time.monotonic()
            for job in jobs:
                self.metrics.queue_wait.observe(now - job.enqueued)
        return jobs

    def _take_batch(self) -> list[_Job]:
        """The oldest job and, when it encodes texts, the waiting ones with its spec up to the token budget
        (after waiting for them: see the module's docstring). A call runs alone."""
        limits = self.limits
        first = self._pending[0]
        merging = limits.dynamic_batching and first.spec is not None
        if merging:
            if first.enqueued >= self._free_since:  # arrived at an idle encoder: wait for company
                deadline = first.enqueued + limits.max_wait_ms / 1000.0
            else:  # under load: give the clients just answered a moment to rejoin (see rejoin_wait_ms)
                deadline = self._free_since + limits.rejoin_wait_ms / 1000.0
            while not self._closing:
                ready = sum(j.tokens for j in self._pending if j.spec == first.spec)
                remaining = deadline - time.monotonic()
                if ready >= limits.batch_tokens or remaining <= 0:
                    break
                self._cond.wait(remaining)
        jobs = [self._pending.popleft()]
        if merging:
            total = first.tokens
            keep: deque[_Job] = deque()
            for job in self._pending:
                if job.spec == first.spec and total + job.tokens <= limits.batch_tokens:
                    jobs.append(job)
                    total += job.tokens
                else:
                    keep.append(job)
            self._pending = keep
        self._queued_texts -= sum(job.size for job in jobs)
        self._update_gauges()
        return jobs

    def _process(self, batch: list[_Job]) -> None:
        """Run the batch; the encoder is free again after it, failed or not (`_free_since`)."""
        try:
            self._execute(batch)
        finally:
            self._free_since = time.monotonic()

    def _fail(self, batch: list[_Job], exc: BaseException) -> None:
        """Log the failure, then give every unanswered request of the batch the error."""
        logger.error("encoder batch failed", exc_info=exc)
        super()._fail(batch, exc)

    def _execute(self, jobs: list[_Job]) -> None:
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        started = time.perf_counter()
        call = live[0].call
        if call is not None:
            job = live[0]
            try:
                job.future.set_result(call(self.embedder))
            except Exception as exc:
                job.future.set_exception(exc)
            self._observe(live, job.size, job.tokens, started)
            return
        spec = live[0].spec
        assert spec is not None
        texts = [text for job in live for text in job.texts]
        try:
            result = self._encode(texts, spec)
        except Exception:
            if len(live) == 1:
                raise
            # one request's input broke the merged batch: give every request its own answer
            for job in live:
                try:
                    job.future.set_result(self._encode(job.texts, spec))
                except Exception as exc:
                    job.future.set_exception(exc)
            self._observe(live, len(texts), sum(job.tokens for job in live), started)
            return
        start = 0
        for job in live:
            stop = start + len(job.texts)
            job.future.set_result(result.rows(start, stop))
            start = stop
        self._observe(live, len(texts), sum(result.num_tokens), started)

    def _encode(self, texts: list[str], spec: EncodeSpec) -> EncodeResult:
        return self.embedder.encode(
            texts,
            dense=spec.dense,
            sparse=spec.sparse,
            colbert=spec.colbert,
            prompt=spec.prompt,
            max_length=spec.max_length,
            mcls=spec.mcls,
            batch_tokens=self.limits.batch_tokens,
            show_progress=False,
        )

    def _observe(self, jobs: list[_Job], texts: int, tokens: int, started: float) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        m.batch_seconds.observe(time.perf_counter() - started)
        m.batch_requests.observe(len(jobs))
        m.batch_texts.observe(texts)
        m.batch_tokens.observe(tokens)
        m.texts.inc(texts)
        m.tokens.inc(tokens)
