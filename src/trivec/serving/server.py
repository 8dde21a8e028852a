"""Run the app with uvicorn: in the foreground (`trivec serve`) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import replace
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from trivec.errors import InputError
from trivec.serving.app import create_app
from trivec.serving.config import ServerConfig

logger = logging.getLogger("trivec.serving")


def build_app(config: ServerConfig) -> FastAPI:
    """Load the model (and the index and the reranker, if any) named by `config` and build the app around them.

    With an index and no model, the model is the one the index records.
    """
    import torch

    from trivec.inference import Embedder

    config.validate()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    searcher_cls = None
    if config.index is not None:
        from trivec.serving.search import IndexSearcher

        searcher_cls = IndexSearcher
        if config.model is None:
            config = replace(config, model=IndexSearcher.recorded_model(config.index))
    model = config.model or "default"
    embedder = Embedder.from_pretrained(
        model,
        device=config.device,
        dtype=config.dtype,
        batch_tokens=config.limits.batch_tokens,
        prompts=config.prompts,
        backend="onnx" if config.backend == "onnx" else "torch",
        onnx_file=config.onnx_file,
    )
    index = (
        searcher_cls.open(
            config.index, embedder, verify=config.verify_index, queue_size=config.limits.queue_size
        )
        if searcher_cls and config.index
        else None
    )
    try:
        reranker = None
        if config.reranker is not None:
            from trivec.inference.reranker import Reranker

            reranker = Reranker.from_pretrained(
                config.reranker,
                device=config.device,
                dtype=config.dtype,
                batch_tokens=config.limits.batch_tokens,
            )
        return create_app(embedder, replace(config, model=model), index, reranker)
    except BaseException:
        if index is not None:  # a reranker that fails to load, a limit the model refuses: the index closes
            index.close()
        raise


def uvicorn_config(app: FastAPI, config: ServerConfig, access_log: bool = False) -> uvicorn.Config:
    """uvicorn settings: lifespan on (the encoder starts and drains with it), graceful shutdown bounded."""
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        lifespan="on",
        log_level=config.log_level,
        access_log=access_log,
        timeout_graceful_shutdown=max(1, int(config.graceful_timeout_s)),
    )


def run_server(config: ServerConfig, access_log: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests and the queue finish before the process exits."""
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    listening = bind_sockets(config.host, config.port)  # a busy port is said before the model loads
    app = build_app(config)
    if config.api_key is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s without an API key: anyone who reaches it can use it", config.host)
    uvicorn.Server(uvicorn_config(app, config, access_log)).run(sockets=listening)


def bind_sockets(host: str, port: int) -> list[socket.socket]:
    """TCP sockets bound to every address `host` resolves to (as asyncio binds a host name: IPv6 ones
    IPv6-only), on `port` (0: one the OS picks), or an `InputError` saying why not (unknown host, in use, not
    allowed). IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so."""
    shown = f"[{host}]" if ":" in host else host
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(
            f"cannot listen on {shown}: {exc.strerror}", cli=f"--host {host}: {exc.strerror}"
        ) from None
    bound: list[socket.socket] = []
    for family, kind, _, _, address in dict.fromkeys((f, k, p, c, a) for f, k, p, c, a in found):
        sock = socket.socket(family, kind, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as exc:
            for done in [*bound, sock]:
                done.close()
            reason = exc.strerror or str(exc)
            raise InputError(
                f"cannot listen on {shown}:{port} ({reason})",
                cli=f"--port {port}: cannot listen on {shown} ({reason})",
            ) from None
        bound.append(sock)
    return bound


class ServerThread:
    """uvicorn in a background thread on a loopback port chosen by the OS (port 0) or given.

    The socket is bound before the thread starts, so `url` is valid at once and no other process can take the
    port in between. `stop()` shuts down as SIGTERM would: in-flight requests finish, the queue drains.
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, graceful_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.host = host
        self._sockets = bind_sockets(host, port)
        self.port = int(self._sockets[0].getsockname()[1])
        config = ServerConfig(
            host=host, port=self.port, log_level="warning", graceful_timeout_s=graceful_timeout_s
        )
        self.server = uvicorn.Server(uvicorn_config(app, config))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerThread:
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": self._sockets}, name="trivec-uvicorn", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server thread exited during startup (see the log above)")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server did not start within {timeout:.0f} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
