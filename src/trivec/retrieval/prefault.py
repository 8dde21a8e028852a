"""Bringing new segments into memory and checking them whole, on a background thread.

Searches map segment files lazily and check each block the first time they read it; an index that fits in
memory is also read ahead here (`Segment.prefault`) and then checked block by block, so that neither the
first queries nor a damaged block wait for a search to find them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from trivec.retrieval.segment import CorruptIndexError, Segment

logger = logging.getLogger("trivec.retrieval")
PREFAULT_MEMORY_FRACTION = 0.5  # prefault vectors only while they fit in this share of physical memory


class Prefaulter:
    """The background reads and checks of one index's segments."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, segments: Sequence[Segment]) -> None:
        """Map the random-access files of the segments not yet prefaulted into memory on a background
        thread, then check them whole, unless the index's vectors would take more than half of the
        machine's memory."""
        todo = [seg for seg in segments if not seg.prefaulted]
        if not todo:
            return
        total = sum(seg.random_access_bytes() for seg in segments)
        if total > PREFAULT_MEMORY_FRACTION * _physical_memory():
            return
        for seg in todo:
            seg.prefaulted = True

        def prepare() -> None:
            for seg in todo:
                seg.prefault()
            for seg in todo:  # then every block checked (a search checks the blocks it reads meanwhile)
                try:
                    seg.check_all()
                except CorruptIndexError as exc:
                    seg.damage = str(exc)
                    logger.error("%s", exc)

        thread = threading.Thread(target=prepare, name="trivec-prefault", daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait (at most `timeout` seconds in all) for the background work started so far."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0
