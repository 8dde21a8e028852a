"""`EncodePool`: `Embedder.encode` in several processes (on the CPU, or one per GPU), results as from one.

Each worker process loads the model once (the `Embedder.from_pretrained` arguments of the parent's embedder,
on its own device). The parent tokenises and plans the token-budget batches exactly as `Embedder.encode`
does, then sends each batch's texts to whichever worker is free; a worker encodes them as one batch (the
same rows in the same order), and the parent puts each row back at its text's input position. So the
outputs are bit for bit those of one process running as many torch threads as each worker (the tests check
dense, sparse and ColBERT). CPU workers split the cores (2 workers on 2 cores: one torch thread each).
Against one process with more threads, dense and ColBERT came out identical on the CPU here; sparse weights
may differ in the last bit, since the sparse head's [H → 1] product splits its sum by thread.

A worker's failure (an exception, or the process ending) reaches the caller as one `WorkerError` naming the
worker and its device; the pool is then shut down. Workers are started with `spawn` (safe beside torch's
thread pools and CUDA): a script that starts a pool must guard its top level with
`if __name__ == "__main__":`, as for any `multiprocessing` program. Workers also exit when the parent does.
"""

from __future__ import annotations

import contextlib
import inspect
import multiprocessing as mp
import os
import pickle
import queue
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trivec.errors import InputError, TrivecError
from trivec.inference.devices import resolve_device
from trivec.inference.hidden import check_layer, num_layers
from trivec.inference.text_outputs import insert_cls_slots

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from trivec.inference.encoder import Embedder, EncodeResult

POLL_S = 0.5  # how often a waiting parent checks that its workers are alive (and a worker its parent)
JOIN_S = 10.0  # how long `close` waits for a worker to finish before it is terminated


class WorkerError(TrivecError):
    """A worker process of an `EncodePool` failed or ended; the pool has been shut down."""


def cpu_count() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_devices(
    workers: int | None, devices: str | Sequence[str] | None, default: torch.device
) -> list[str]:
    """One device per worker, checked once: `devices` as given (`"cpu,cpu"`, `["cuda:0", "cuda:1"]`), else
    `workers` copies of the default device's type (CUDA: `cuda:0` … `cuda:N-1`)."""
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise InputError(
            f"workers must be a positive integer, got {workers!r}",
            cli=f"--workers must be a positive integer, got {workers!r}",
        )
    if devices is None:
        if workers is None:
            raise InputError("give workers or devices")
        names = [f"cuda:{i}" for i in range(workers)] if default.type == "cuda" else [default.type] * workers
    else:
        names = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else list(devices)
        if not names or not all(names):
            raise InputError(f"devices must name one device per worker, got {devices!r}")
        if workers is not None and workers != len(names):
            raise InputError(
                f"{workers} workers but {len(names)} devices ({', '.join(names)}): give one each"
            )
    return [_check_device(name) for name in names]


def _check_device(name: str) -> str:
    device = resolve_device(name)
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device {name!r}: workers run on cpu or cuda devices")
    return str(device)


def _work(
    source: dict[str, Any], device: str, threads: int, tasks: Any, results: Any, index: int, parent: int
) -> None:
    """A worker: load the model once, then encode the batches it is sent until it gets None."""
    try:
        if threads:
            torch.set_num_threads(threads)
        from trivec.inference.encoder import Embedder

        embedder = Embedder.from_pretrained(**source, device=device)
    except BaseException as exc:  # reported to the parent, which raises it
        results.put(("failed", index, -1, f"could not load the model: {_describe(exc)}"))
        return
    results.put(("ready", index, -1, None))
    while True:
        try:
            task = tasks.get(timeout=POLL_S)
        except queue.Empty:
            if os.getppid() != parent:  # the parent is gone: nobody will read the results
                return
            continue
        if task is None:
            return
        key, texts, options = task
        try:
            results.put(("done", index, key, embedder.encode(texts, **options, show_progress=False)))
        except Exception as exc:  # reported to the parent, which raises it
            results.put(("failed", index, key, _describe(exc)))


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


class EncodePool:
    """Worker processes that encode for `embedder` (see the module doc); while open, `embedder.encode` runs
    in them. Use as a context manager, or call `close`."""

    def __init__(
        self, embedder: Embedder, workers: int | None = None, devices: str | Sequence[str] | None = None
    ) -> None:
        if embedder.source is None:
            raise InputError(
                "a pool loads the model in each worker: create the Embedder with from_pretrained"
            )
        if embedder._pool is not None:
            raise InputError("this Embedder has an open pool already: close it first")
        self.devices = resolve_devices(workers, devices, embedder.device)
        on_cpu = sum(torch.device(d).type == "cpu" for d in self.devices)
        self.threads = max(1, cpu_count() // on_cpu) if on_cpu else 0
        context = mp.get_context("spawn")
        self._tasks: Any = context.Queue()
        self._results: Any = context.Queue()
        self._embedder = embedder
        self.processes: list[BaseProcess] = []
        for i, device in enumerate(self.devices):
            threads = self.threads if torch.device(device).type == "cpu" else 0
            args = (embedder.source, device, threads, self._tasks, self._results, i, os.getpid())
            process = context.Process(target=_work, args=args, name=f"trivec-encode-{i}", daemon=True)
            process.start()
            self.processes.append(process)
        self._wait({-1: len(self.devices)})  # every worker has loaded the model (or the pool is closed)
        embedder._pool = self

    @property
    def closed(self) -> bool:
        return not self.processes

    def encode(self, texts: list[str], arguments: dict[str, Any]) -> EncodeResult:
        """`Embedder.encode(texts, **arguments)` in the workers, one planned batch per task (`texts` and
        `arguments` checked by `encode` already; those not given take `encode`'s defaults)."""
        from trivec.inference.encoder import Embedder, EncodeResult

        if self.closed:
            raise InputError("the encode pool is closed")
        parameters = inspect.signature(Embedder.encode).parameters.items()
        skip = ("self", "texts", "show_progress")  # progress is not shown from workers
        options = {k: arguments.get(k, p.default) for k, p in parameters if k not in skip}
        embedder = self._embedder
        outputs = options["dense"] or options["sparse"] or options["colbert"]
        if options["hidden_states"]:  # checked here, where `encode` checks it later: not a worker's failure
            check_layer(options["layer"], num_layers(embedder.model))
        limit = embedder._check_max_length(options["max_length"])
        ids = embedder.tokenize(embedder.with_prompt(texts, options["prompt_name"], options["prompt"]), limit)
        if options["mcls"] and outputs:
            ids, _ = insert_cls_slots(ids, int(embedder.tokenizer.cls_token_id), limit)
        budget, batches = embedder.batch_plan([len(x) for x in ids], options["batch_tokens"])
        sent = {**options, "batch_tokens": budget}
        try:  # here, not in the queue's feeder thread, which would only print the error and drop the task
            pickle.dumps(sent)
        except Exception as exc:
            raise InputError(f"encode arguments cannot be sent to the workers: {_describe(exc)}") from exc
        for key, batch in enumerate(batches):
            self._tasks.put((key, [texts[i] for i in batch], sent))
        done = self._wait(dict.fromkeys(range(len(batches)), 1))
        if not batches:
            return EncodeResult(num_tokens=[])
        # the batches' rows in plan order, then each text's row put back at its input position
        in_plan_order = EncodeResult.concat([done[key] for key in range(len(batches))])
        return in_plan_order.take(
            np.argsort(np.concatenate([np.asarray(b, dtype=np.int64) for b in batches]))
        )

    def _wait(self, pending: dict[int, int]) -> dict[int, Any]:
        """Collect `pending[key]` messages per key; a failure or a dead worker closes the pool and raises."""
        done: dict[int, Any] = {}
        while pending:
            try:
                kind, worker, key, payload = self._results.get(timeout=POLL_S)
            except queue.Empty:
                self._raise_if_one_ended()
                continue
            if kind == "failed":
                self.close(wait=False)
                raise WorkerError(f"encode worker {worker} ({self.devices[worker]}) failed: {payload}")
            done[key] = payload
            pending[key] -= 1
            if not pending[key]:
                del pending[key]
            # after each result too, not only when none comes: the others may do all the work of a dead one
            self._raise_if_one_ended()
        return done

    def _raise_if_one_ended(self) -> None:
        """A worker that ended while the pool waits closes it and raises (workers end only when closed), with
        the failure it reported before ending (could not load the model) when there is one."""
        ended = [(i, p.exitcode) for i, p in enumerate(self.processes) if not p.is_alive()]
        if not ended:
            return
        reason = None
        with contextlib.suppress(queue.Empty):
            while reason is None:  # what the workers sent before ending is in the queue already
                kind, worker, _, payload = self._results.get(timeout=POLL_S)
                if kind == "failed":
                    reason = f"encode worker {worker} ({self.devices[worker]}) failed: {payload}"
        self.close(wait=False)
        i, code = ended[0]
        raise WorkerError(
            reason or f"encode worker {i} ({self.devices[i]}) ended unexpectedly (exit code {code})"
        )

    def close(self, wait: bool = True) -> None:
        """Stop the workers (`wait`: let them finish first, else terminate them) and detach from the embedder."""
        if self._embedder._pool is self:
            self._embedder._pool = None
        processes, self.processes = self.processes, []
        if wait:
            for _ in processes:
                self._tasks.put(None)
        for process in processes:
            if wait:
                process.join(JOIN_S)
            if process.is_alive():
                process.terminate()
            process.join()
        for q in (self._tasks, self._results):
            q.cancel_join_thread()
            q.close()

    def __enter__(self) -> EncodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "processes", None):
            self.close(wait=False)
