"""What the `trivec` command says while it works: log lines on stderr, and progress of every long step.

`setup_logging` sends trivec's log records to stderr as `trivec: <message>` lines (INFO and up; with `-q`
only warnings and errors). `Progress` reports a long step: a tqdm bar when stderr is a terminal, and
otherwise — a job's log, a pipe, CI — a line every `interval` seconds (`encode: 12,288/100,000 texts (12%),
410/s, 3 min 34 s left`) and one when the step ends, so a long run never sits silent.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

LOG = logging.getLogger("trivec")
INTERVAL_S = 10.0  # seconds between two progress lines when stderr is not a terminal


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is at the time (test runners replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"trivec: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"trivec: warning: {message}"
        return f"trivec: {message}"


_quiet = False


def setup_logging(quiet: bool = False) -> None:
    """trivec's log records on stderr (`-q`: warnings and errors only); idempotent."""
    global _quiet
    _quiet = quiet
    handler = next((h for h in LOG.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(_Format())
        LOG.addHandler(handler)
        LOG.propagate = False
    LOG.setLevel(logging.WARNING if quiet else logging.INFO)


def is_quiet() -> bool:
    return _quiet


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class Progress:
    """Progress of one step over `total` units: `update(n)` as work is done, `close()` (or a `with` block)
    at the end. A bar on a terminal, periodic log lines elsewhere, nothing with `-q` (or `enabled=False`)."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "texts",
        *,
        enabled: bool | None = None,
        interval: float | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.done = 0
        self.interval = INTERVAL_S if interval is None else interval
        self.started = self._last = time.monotonic()
        self.enabled = (not _quiet) if enabled is None else enabled
        target = stream if stream is not None else sys.stderr
        self._bar: Any = None
        if self.enabled and getattr(target, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit.rstrip("s") or unit, file=target)

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval and self.done < self.total:
            self._last = now
            LOG.info("%s", self._line(now))

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        left = (
            f", {_duration((self.total - self.done) / rate)} left"
            if rate > 0 and self.done < self.total
            else ""
        )
        return f"{self.desc}: {self.done:,}/{self.total:,} {self.unit}{share}, {rate:,.0f}/s{left}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.total and time.monotonic() - self.started >= self.interval:
            LOG.info(
                "%s: %s %s in %s",
                self.desc,
                f"{self.done:,}",
                self.unit,
                _duration(time.monotonic() - self.started),
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Step:
    """A long step without units (building a graph, merging segments): while it runs, a line every
    `interval` seconds (`building the HNSW graph of 100,000 rows: 20 s so far`), and one with its duration
    when it ends if it took at least `at_least` seconds."""

    def __init__(self, message: str, at_least: float = 2.0, interval: float | None = None) -> None:
        self.message, self.at_least = message, at_least
        self.interval = INTERVAL_S if interval is None else interval
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            LOG.info("%s: %s so far", self.message, _duration(time.monotonic() - self.started))

    def __enter__(self) -> Step:
        self.started = time.monotonic()
        if not _quiet:
            self._thread = threading.Thread(target=self._tick, name="trivec-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        took = time.monotonic() - self.started
        if exc_type is None and took >= self.at_least:
            LOG.info("%s: %s", self.message, _duration(took) if took >= 1 else f"{took * 1000:.0f} ms")
