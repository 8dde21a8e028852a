"""`EncodePool`: encoding in worker processes gives the in-process outputs bit for bit; failures reach the
caller as one `WorkerError`; the pool leaves no process behind."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_M3
from trivec import Embedder
from trivec.errors import InputError
from trivec.inference.pool import EncodePool, WorkerError, cpu_count, resolve_devices

# lengths from 2 to ~120 tokens, so a small budget plans several batches of different widths
TEXTS = [" ".join(f"w{(i * 13 + j) % 97}" for j in range(1 + (i * 7) % 60)) for i in range(120)]


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() and all(p.pid != pid for p in mp.active_children())


@pytest.fixture(scope="module")
def pooled() -> Iterator[tuple[Embedder, EncodePool]]:
    embedder = Embedder.from_pretrained(TINY_M3, device="cpu")
    with embedder.start_pool(workers=2) as pool:
        yield embedder, pool


@pytest.mark.parametrize("mcls", [False, True])
def test_two_workers_give_the_in_process_outputs_bit_for_bit(
    tiny: Embedder, pooled: tuple[Embedder, EncodePool], mcls: bool
) -> None:
    embedder, pool = pooled
    options = dict(dense=True, sparse=True, colbert=True, batch_tokens=512, mcls=mcls, prompt="p: ")
    threads = torch.get_num_threads()
    torch.set_num_threads(pool.threads)  # the sparse head's [H → 1] product sums by thread: same count
    try:
        one = tiny.encode(TEXTS, **options)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    two = embedder.encode(TEXTS, **options)  # type: ignore[arg-type]
    assert embedder._pool is pool and len(pool.devices) == 2
    assert one.dense is not None and two.dense is not None and one.dense.dtype == two.dense.dtype
    assert np.array_equal(one.dense, two.dense)
    assert one.num_tokens == two.num_tokens
    assert one.sparse is not None and two.sparse is not None and one.colbert is not None and two.colbert
    for a, b in zip(one.sparse, two.sparse, strict=True):
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
    for a, b in zip(one.colbert, two.colbert, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_pool_splits_the_cores_and_checks_inputs_in_the_parent(
    tiny: Embedder, pooled: tuple[Embedder, EncodePool]
) -> None:
    embedder, pool = pooled
    assert pool.threads == max(1, cpu_count() // 2)
    empty = embedder.encode([], dense=True)
    assert empty.dense is not None and empty.dense.shape == (0, tiny.model.hidden_size)
    with pytest.raises(InputError, match="max_length"):
        embedder.encode(["a"], max_length=10**6)
    with pytest.raises(InputError, match="open pool"):
        embedder.start_pool(workers=1)
    with pytest.raises(InputError, match="cannot be sent to the workers"):
        pool.encode(TEXTS[:2], {"layer": lambda: 0})  # a lambda does not pickle
    assert embedder.encode(["still working"]).dense is not None


def test_closing_leaves_no_process_and_encoding_returns_in_process(tiny: Embedder) -> None:
    embedder = Embedder.from_pretrained(TINY_M3, device="cpu")
    pool = embedder.start_pool(devices="cpu,cpu")
    pids = [p.pid for p in pool.processes]
    assert all(pid is not None and not gone(pid) for pid in pids)
    pool.close()
    assert pool.closed and embedder._pool is None
    assert all(gone(pid) for pid in pids if pid is not None)
    assert np.array_equal(embedder.encode(TEXTS[:5]).dense, tiny.encode(TEXTS[:5]).dense)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="closed"):
        pool.encode(TEXTS[:1], {})


def test_a_worker_that_dies_is_one_clear_error_and_the_pool_shuts_down() -> None:
    embedder = Embedder.from_pretrained(TINY_M3, device="cpu")
    pool = embedder.start_pool(workers=2)
    pids = [p.pid for p in pool.processes]
    assert pids[0] is not None
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(WorkerError, match=r"encode worker 0 \(cpu\) ended unexpectedly \(exit code -9\)"):
        embedder.encode(TEXTS * 20, batch_tokens=256)
    assert pool.closed and embedder._pool is None
    assert all(gone(pid) for pid in pids if pid is not None)


def test_a_failure_inside_a_worker_is_one_clear_error(tmp_path: Path) -> None:
    """Workers that load the model without its heads (their files gone after the parent loaded it) fail
    when asked for sparse weights: one `WorkerError` with the worker's exception, and the pool is shut."""
    copy = shutil.copytree(TINY_M3, tmp_path / "model")
    embedder = Embedder.from_pretrained(copy, device="cpu")
    for head in ("sparse_linear.pt", "colbert_linear.pt"):
        (copy / head).unlink()
    pool = embedder.start_pool(workers=2)
    pids = [p.pid for p in pool.processes]
    with pytest.raises(
        WorkerError, match=r"encode worker \d \(cpu\) failed: UnsupportedOutputError: .*sparse"
    ):
        embedder.encode(TEXTS, sparse=True)
    assert pool.closed and embedder._pool is None
    assert all(gone(pid) for pid in pids if pid is not None)


def test_a_bad_layer_is_refused_in_the_parent(pooled: tuple[Embedder, EncodePool]) -> None:
    embedder, pool = pooled
    with pytest.raises(InputError, match="layer"):
        embedder.encode(TEXTS[:3], hidden_states=True, layer=99)
    assert not pool.closed


def test_a_worker_that_cannot_load_the_model_fails_the_start(tmp_path: Path) -> None:
    copy = shutil.copytree(TINY_M3, tmp_path / "model")
    embedder = Embedder.from_pretrained(copy, device="cpu")
    shutil.rmtree(copy)
    before = {p.pid for p in mp.active_children()}  # the module's pool may be open
    with pytest.raises(WorkerError, match=r"encode worker \d \(cpu\) failed: could not load the model"):
        embedder.start_pool(workers=2)
    assert embedder._pool is None
    assert {p.pid for p in mp.active_children()} <= before


def test_devices_are_checked_once() -> None:
    cpu = torch.device("cpu")
    assert resolve_devices(2, None, cpu) == ["cpu", "cpu"]
    assert resolve_devices(None, "cpu, cpu,cpu", cpu) == ["cpu"] * 3
    for workers, devices, problem in [
        (0, None, "workers must be a positive integer"),
        (None, None, "give workers or devices"),
        (3, "cpu,cpu", "3 workers but 2 devices"),
        (None, "cpu,,cpu", "one device per worker"),
        (None, "tpu", "unknown device 'tpu'"),
        (None, f"cuda:{torch.cuda.device_count()}", "is not available"),
        (None, "meta", "trivec runs on cpu, cuda, cuda:N or mps"),
    ]:
        with pytest.raises(InputError, match=problem):
            resolve_devices(workers, devices, cpu)


def test_an_embedder_built_from_a_model_object_has_no_source(tiny: Embedder) -> None:
    with pytest.raises(InputError, match="from_pretrained"):
        Embedder(tiny.model, device="cpu").start_pool(workers=2)
