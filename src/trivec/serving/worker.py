"""One worker thread that merges waiting jobs into batches: the encoder's batcher, the reranker's and the
search thread are such workers.

`MergingWorker` owns what they share: the queue of pending jobs and its condition, the thread, and the
shutdown — `close()` refuses new work (`ShuttingDownError`), lets the thread finish everything already
queued, and joins it. A subclass says how a job is queued (`_admit`: a bounded queue refuses it there), how
the next batch is taken from the queue (`_take_batch`: the oldest job and the waiting ones it may merge
with) and how a batch runs (`_process`: each job gets its own slice of the answer); whatever `_process`
raises reaches every job of the batch still unanswered, and the thread goes on.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from trivec.errors import TrivecError


class ShuttingDownError(TrivecError):
    """The server is draining its queue before exit and takes no new work."""


class Job(Protocol):
    """A queued piece of work: its requester waits on `future`."""

    @property
    def future(self) -> Future[Any]: ...


J = TypeVar("J", bound=Job)


class MergingWorker(Generic[J]):
    """A queue of jobs in front of one thread that takes them in batches of compatible jobs."""

    thread_name: ClassVar[str] = "trivec-worker"
    closed_message: ClassVar[str] = "the server is shutting down and takes no new requests"

    def __init__(self) -> None:
        self._pending: deque[J] = deque()
        self._cond = threading.Condition()  # guards _pending and _closing; the thread waits on it for work
        self._closing = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new work, finish what is queued, stop the thread; True when it stopped within `timeout`."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
                self._cond.wait()
            return self._take_batch()

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
