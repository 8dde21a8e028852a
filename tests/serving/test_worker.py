"""The merging worker shared by the encoder batcher, the reranker's batcher and the search thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest

from trivec.serving.worker import MergingWorker, ShuttingDownError


@dataclass
class _Job:
    key: str
    value: int
    future: Future[int] = field(default_factory=Future)


class _SumByKey(MergingWorker[_Job]):
    """Each batch: the oldest job and every waiting job of its key; each answer is the batch's sum."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []
        self.gate = threading.Event()

    def _take_batch(self) -> list[_Job]:
        key = self._pending[0].key
        batch = [job for job in self._pending if job.key == key]
        for job in batch:
            self._pending.remove(job)
        return batch

    def _process(self, batch: list[_Job]) -> None:
        self.gate.wait(5)
        self.batches.append([job.value for job in batch])
        if any(job.value < 0 for job in batch):
            raise ValueError("negative value")
        total = sum(job.value for job in batch)
        for job in batch:
            job.future.set_result(total)

    def submit(self, key: str, value: int) -> Future[int]:
        job = _Job(key, value)
        self._submit(job)
        self.start()
        return job.future


def test_waiting_jobs_of_one_key_are_merged_and_each_gets_the_answer() -> None:
    worker = _SumByKey()
    jobs = [_Job(key, value) for key, value in (("a", 1), ("b", 10), ("a", 2), ("a", 3))]
    worker._pending.extend(jobs)  # all waiting before the thread starts: the batches are deterministic
    worker.gate.set()
    worker.start()
    assert [job.future.result(5) for job in jobs] == [6, 10, 6, 6]
    assert worker.close(5)
    assert worker.batches == [[1, 2, 3], [10]]


def test_an_error_reaches_every_job_of_its_batch_and_the_thread_goes_on() -> None:
    worker = _SumByKey()
    jobs = [_Job("a", value) for value in (1, -1, 2)]
    worker._pending.extend(jobs)
    worker.gate.set()
    worker.start()
    for job in jobs:
        with pytest.raises(ValueError, match="negative value"):
            job.future.result(5)
    assert worker.submit("b", 4).result(5) == 4  # still serving
    assert worker.close(5)


def test_close_drains_the_queue_then_refuses_new_work() -> None:
    worker = _SumByKey()
    pending = [worker.submit(key, 1) for key in ("a", "b", "c")]
    worker.gate.set()
    assert worker.close(5)
    assert [f.result(0) for f in pending] == [1, 1, 1]
    assert not worker.alive
    with pytest.raises(ShuttingDownError):
        worker.submit("a", 1)


def test_a_worker_never_started_closes_at_once() -> None:
    assert _SumByKey().close(0.1)


def test_two_threads_take_batches_side_by_side_and_close_joins_both() -> None:
    class _Slow(_SumByKey):
        def __init__(self) -> None:
            MergingWorker.__init__(self, threads=2)
            self.batches, self.gate = [], threading.Event()
            self.running = threading.Barrier(2, timeout=10)

        def _process(self, batch: list[_Job]) -> None:
            self.running.wait()  # both threads inside a batch at once, or BrokenBarrierError
            super()._process(batch)

    worker = _Slow()
    worker.gate.set()
    jobs = [worker.submit(key, 1) for key in ("a", "b")]
    assert [job.result(10) for job in jobs] == [1, 1]
    assert len(worker._workers) == 2 and worker.alive
    assert worker.close(10) and not worker.alive
    with pytest.raises(ValueError, match="at least one thread"):
        MergingWorker(threads=0)
