"""ASGI middleware that acts before a body is read: request metrics, the Bearer API key, the body limit."""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trivec.serving.errors import error_response
from trivec.serving.metrics import ServerMetrics

OPEN_PATHS = ("/health", "/docs", "/redoc", "/openapi.json")  # liveness probes and the API's own description


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class MetricsMiddleware:
    """Count every response by endpoint and status and time it (unknown paths share the label `other`)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, endpoints: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = set(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "other"
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)


class ApiKeyMiddleware:
    """Require `Authorization: Bearer <key>` on every path but the open ones (401 otherwise)."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Collection[str] = OPEN_PATHS) -> None:
        self.app = app
        self.expected = api_key.encode()
        self.open_paths = set(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"authorization")
        if header is None:
            message = "missing API key: send the header 'Authorization: Bearer <key>'"
        else:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and secrets.compare_digest(token.strip().encode(), self.expected):
                await self.app(scope, receive, send)
                return
            message = "invalid API key in the Authorization header (expected 'Bearer <key>')"
        response = error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413: by Content-Length up front, else while the body streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self, size: int | None) -> str:
        got = f" ({size} bytes)" if size is not None else ""
        return (
            f"request body too large{got}: this server accepts at most {self.max_bytes} bytes "
            "(--max-body-bytes); split the input into several requests"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await error_response(400, f"invalid Content-Length header {declared!r}")(scope, receive, send)
                return
            if size > self.max_bytes:
                response = error_response(413, self._message(size), headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises HTTPException from body reading; the app's handler answers 413
                    raise StarletteHTTPException(413, self._message(None), headers={"Connection": "close"})
            return message

        await self.app(scope, limited_receive, send)
