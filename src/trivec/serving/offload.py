"""Keeping the event loop free: heavy parsing and rendering go to the thread pool, model work to the
worker threads, whose futures the endpoints await."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
INLINE_CHARS = 20_000  # tokenise inline below this many characters per request
INLINE_FLOATS = 50_000  # render JSON inline below this many numbers per response


async def offload(heavy: bool, func: Callable[..., T], *args: Any) -> T:
    """Run `func` in a worker thread when it is heavy; small work runs inline (a thread hop costs more)."""
    if heavy:
        return await run_in_threadpool(func, *args)
    return func(*args)


def heavy_text(*groups: Sequence[str]) -> bool:
    """Whether tokenising these texts is worth a thread hop (more than `INLINE_CHARS` characters in all)."""
    return sum(len(text) for texts in groups for text in texts) > INLINE_CHARS


async def wait(future: Future[T]) -> T:
    """Await a worker thread's future (the batcher's, the search thread's) without blocking the loop."""
    return await asyncio.wrap_future(future)
