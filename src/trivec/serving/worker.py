"""Worker threads that merge waiting jobs into batches: the encoder's batcher, the reranker's and the search
threads are such workers.

`MergingWorker` owns what they share: the queue of pending jobs and its condition, the threads (one, or
`threads` taking batches side by side), and the shutdown — `close()` refuses new work (`ShuttingDownError`),
lets the threads finish everything already queued, and joins them. A subclass says how a job is queued (`_admit`: a bounded queue refuses it there), how
the next batch is taken from the queue (`_take_batch`: the oldest job and the waiting ones it may merge
with) and how a batch runs (`_process`: each job gets its own slice of the answer); whatever `_process`
raises reaches every job of the batch still unanswered, and the thread goes on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from trivec.errors import TrivecError


class ShuttingDownError(TrivecError):
    """The server is draining its queue before exit and takes no new work."""


class QueueFullError(TrivecError):
    """A worker's queue has no room for the request; retry after `retry_after` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Job(Protocol):
    """A queued piece of work: its requester waits on `future`."""

    @property
    def future(self) -> Future[Any]: ...


J = TypeVar("J", bound=Job)


class MergingWorker(Generic[J]):
    """A queue of jobs in front of one thread that takes them in batches of compatible jobs."""

    thread_name: ClassVar[str] = "trivec-worker"
    closed_message: ClassVar[str] = "the server is shutting down and takes no new requests"

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"a worker needs at least one thread, got {threads}")
        self.threads = threads
        self._pending: deque[J] = deque()
        # guards _pending, _closing and _idle; the threads wait on it for work
        self._cond = threading.Condition()
        self._closing = False
        self._idle = 0  # threads waiting for work (a batch may leave jobs for them)
        self._workers: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker threads (once)."""
        if self._workers:
            return
        for k in range(self.threads):
            name = self.thread_name if self.threads == 1 else f"{self.thread_name}-{k}"
            self._workers.append(threading.Thread(target=self._run, name=name, daemon=True))
        for thread in self._workers:
            thread.start()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new work, finish what is queued, stop the threads; True when they stopped within `timeout`
        (shared by all of them)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._workers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.alive

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self._workers)

    @property
    def idle_threads(self) -> int:
        """Threads waiting for work besides the one taking a batch (read with the lock held)."""
        return self._idle

    # ------------------------------------------------------------------ submission
    def _submit(self, job: J) -> None:
        """Queue `job` for the thread; `ShuttingDownError` once closing (or what `_admit` raises)."""
        with self._cond:
            if self._closing:
                raise ShuttingDownError(self.closed_message)
            self._admit(job)
            self._cond.notify_all()

    def _admit(self, job: J) -> None:
        """Put `job` on the queue (the lock held): the place to refuse it, or to count it."""
        self._pending.append(job)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self._process(batch)
            except BaseException as exc:  # keep the thread alive whatever one batch does
                self._fail(batch, exc)

    def _take(self) -> list[J] | None:
        """Wait for work; return the next batch (None once closed and drained)."""
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._idle += 1
                try:
                    self._cond.wait()
                finally:
                    self._idle -= 1
            batch = self._take_batch()
            if self._pending:
                self._cond.notify()  # what this batch left: another thread's, if one waits
            return batch

    def _take_batch(self) -> list[J]:
        """The next batch, taken off the queue (never empty; the lock held: it may `self._cond.wait()`)."""
        raise NotImplementedError

    def _process(self, batch: list[J]) -> None:
        """Run a batch and answer each of its jobs' futures."""
        raise NotImplementedError

    def _fail(self, batch: list[J], exc: BaseException) -> None:
        """`_process` raised `exc`: every job of the batch not answered yet gets it."""
        for job in batch:
            if not job.future.done():
                job.future.set_exception(exc)
