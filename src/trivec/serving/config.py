"""Server settings: what to serve, where to listen, and the limits that keep one server bounded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trivec.errors import InputError
from trivec.inference.choices import check_backend, check_dtype_name

CHARS_PER_TOKEN = 32  # the default character limit per text: this many per token of the token limit


@dataclass
class ServingLimits:
    """Limits on requests and on the dynamic batcher.

    max_texts_per_request: texts in one request (a score pair counts as two); more → 413.
    max_tokens_per_text: tokens of one text, special tokens included (None: the model's limit); a longer text
        → 413, unless the request asks to truncate (`truncate: true` or an explicit `max_length`).
    max_body_bytes: request body size; more → 413 before the body is read.
    max_chars_per_text: characters of one text (None: `CHARS_PER_TOKEN` × the token limit); a longer text → 413
        before it is tokenised (or, with truncation, cut to it first): one huge text must not hold the server
        for seconds and gigabytes while its tokens are counted only to be refused.
    queue_size: texts waiting for the encoder, and queries waiting for a search thread; a request that does not
        fit → 503 with `Retry-After`.
    batch_tokens: token budget of one merged batch (and of each forward pass inside it).
    max_wait_ms: how long a request arriving at an idle encoder may wait for others to join its batch.
    rejoin_wait_ms: under load (requests already waiting when the encoder comes free), how long the next
        batch waits for the clients just answered to send again, so batches stay full instead of settling
        into two half-size groups that take turns.
    dynamic_batching: merge concurrent requests into shared batches (False: one request at a time).
    """

    max_texts_per_request: int = 512
    max_tokens_per_text: int | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_chars_per_text: int | None = None
    queue_size: int = 4096
    batch_tokens: int = 16384
    max_wait_ms: float = 2.0
    rejoin_wait_ms: float = 5.0
    dynamic_batching: bool = True

    def validate(self) -> None:
        """Raise `InputError` naming the first setting out of range (on the command line: its option)."""
        for name in ("max_texts_per_request", "max_body_bytes", "queue_size", "batch_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                _error(name, "must be a positive integer", value)
        if self.max_tokens_per_text is not None and (
            not isinstance(self.max_tokens_per_text, int) or self.max_tokens_per_text < 2
        ):
            _error("max_tokens_per_text", "must be an integer ≥ 2", self.max_tokens_per_text)
        if self.max_chars_per_text is not None and (
            not isinstance(self.max_chars_per_text, int) or self.max_chars_per_text < 1
        ):
            _error("max_chars_per_text", "must be a positive integer", self.max_chars_per_text)
        for name in ("max_wait_ms", "rejoin_wait_ms"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 60_000):
                _error(name, "must be between 0 and 60000 ms", value)
        if self.queue_size < self.max_texts_per_request:
            raise InputError(
                f"queue_size ({self.queue_size}) must be at least max_texts_per_request "
                f"({self.max_texts_per_request}), or the largest allowed request could never be queued",
                cli=f"--queue-size ({self.queue_size}) must be at least --max-texts ({self.max_texts_per_request}), "
                "or the largest allowed request could never be queued",
            )


OPTIONS = {  # `trivec serve`'s option for each setting
    "max_texts_per_request": "--max-texts",
    "max_tokens_per_text": "--max-tokens",
    "max_body_bytes": "--max-body-bytes",
    "max_chars_per_text": "--max-chars",
    "queue_size": "--queue-size",
    "batch_tokens": "--batch-tokens",
    "max_wait_ms": "--max-wait-ms",
    "rejoin_wait_ms": "--rejoin-wait-ms",
    "port": "--port",
    "threads": "--threads",
    "graceful_timeout_s": "--graceful-timeout",
    "dtype": "--dtype",
    "log_level": "--log-level",
    "backend": "--backend",
}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _error(name: str, problem: str, value: object) -> None:
    raise InputError(
        f"{name} {problem}, got {value!r}", cli=f"{OPTIONS.get(name, name)} {problem}, got {value}"
    )


@dataclass
class ServerConfig:
    """Everything `trivec serve` needs: the model, an optional index, the address, auth and limits.

    model: a directory, hub id or `default`; None with an index: the model the index records.
    prompts: `{name: text}` put over the model's prompts (`Embedder(prompts=...)`); an index's searches keep
    the query prompt the index records.
    reranker: a cross-encoder served at `POST /v1/rerank` beside the model (None: that endpoint answers 404).
    threads: torch intra-op threads of the encoder (None: torch's default, one per core). On a CPU shared with
    the HTTP side or other programs, fewer threads than cores often serve faster.
    """

    model: str | None = "default"
    index: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)
    served_model_name: str | None = None
    device: str | None = None
    dtype: str | None = None
    prompts: dict[str, str] | None = None
    threads: int | None = None
    backend: str = "torch"  # or "onnx": the model directory's ONNX graph (`onnx_file` in its onnx/ folder)
    onnx_file: str | None = None
    limits: ServingLimits = field(default_factory=ServingLimits)
    graceful_timeout_s: float = 30.0
    log_level: str = "info"
    verify_index: bool = True  # check every file of the index against its checksums before serving it
    reranker: str | None = None  # a cross-encoder (directory or hub id) for POST /v1/rerank

    def validate(self) -> ServerConfig:
        """Check the limits and the settings (port, threads, dtype, …) before anything loads."""
        self.limits.validate()
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            _error("port", "must be between 0 and 65535", self.port)
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            _error("threads", "must be a positive integer", self.threads)
        if not self.graceful_timeout_s >= 0:
            _error("graceful_timeout_s", "must be ≥ 0 seconds", self.graceful_timeout_s)
        check_dtype_name(self.dtype)
        check_backend(self.backend, self.onnx_file)
        if self.log_level not in LOG_LEVELS:
            _error("log_level", f"must be one of {', '.join(LOG_LEVELS)}", self.log_level)
        if not self.host:
            raise InputError("host must not be empty", cli="--host must not be empty")
        return self

    @property
    def reranker_name(self) -> str:
        """The id reported as `model` by /v1/rerank: the reranker path's last part."""
        reranker = self.reranker or "reranker"
        return Path(reranker).name or reranker

    @property
    def model_name(self) -> str:
        """The id reported as `model` in responses: the given name, else the model path's last part."""
        if self.served_model_name:
            return self.served_model_name
        model = self.model or "default"
        return Path(model).name or model
