"""JSON errors everywhere, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

OpenAI clients read `error.message`, so every failure — validation, auth, limits, a full queue, an unknown
path, a bug — answers with that body and a status code that says who must act.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from trivec.errors import CorruptIndexError, TrivecError
from trivec.retrieval.manifest import IndexReplacedError
from trivec.serving.worker import QueueFullError, ShuttingDownError

logger = logging.getLogger(__name__)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    500: "server_error",
    503: "overloaded_error",
}


class ApiError(Exception):
    """An error with its HTTP status, raised by the endpoints."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = dict(headers or {})


def error_body(status: int, message: str, param: str | None = None, **extra: Any) -> bytes:
    error: dict[str, Any] = {
        "message": message,
        "type": ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error"),
        "param": param,
        "code": status,
    }
    error.update(extra)
    return json.dumps({"error": error}).encode()


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        error_body(status, message, param, **extra),
        status_code=status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def _location(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """One readable line for pydantic's errors, plus a compact list of them (no echo of the input)."""
    details = []
    lines = []
    for err in errors:
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = str(ctx.get("error", "decode error"))
            loc = err.get("loc", ())
            at = f" at position {loc[-1]}" if len(loc) > 1 and isinstance(loc[-1], int) else ""
            if "UTF-8" in reason:
                msg = "the body is not valid JSON: it is not UTF-8 text"
            elif "surrogate" in reason:
                msg = (
                    f"the body is not valid JSON: a lone surrogate escape (\\ud800–\\udfff){at} is not valid "
                    "Unicode text"
                )
            else:
                msg = f"the body is not valid JSON ({reason}{at})"
        elif err.get("type") == "int_parsing_size":  # pydantic: "Unable to parse input string as an integer…"
            msg = "the number is too large for a whole number here"  # not echoed: it may be huge
        elif tuple(err.get("loc", ())) == ("body",) and err.get("type") in (
            "model_attributes_type",
            "missing",
        ):
            msg = "the body must be a JSON object, sent with 'Content-Type: application/json'"
        where = _location(err.get("loc", ()))
        details.append({"loc": [str(p) for p in err.get("loc", ())], "msg": msg, "type": err.get("type")})
        lines.append(msg if where == "body" or err.get("type") == "json_invalid" else f"{where}: {msg}")
    return "; ".join(lines) or "invalid request", details


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into a JSON error."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, param=exc.param, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        message, details = validation_message(exc.errors())
        # OpenAI's `param`: the request field at fault, when every error is about the same one
        fields = {_location(err.get("loc", ())).split(".")[0] for err in exc.errors()}
        param = next(iter(fields)) if len(fields) == 1 and fields != {"body"} else None
        return error_response(422, message, param=param, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(QueueFullError)
    async def _queue_full(request: Request, exc: QueueFullError) -> Response:
        return error_response(503, str(exc), headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(ShuttingDownError)
    async def _closing(request: Request, exc: ShuttingDownError) -> Response:
        return error_response(503, str(exc), headers={"Retry-After": "5", "Connection": "close"})

    @app.exception_handler(CorruptIndexError)
    async def _damaged(request: Request, exc: CorruptIndexError) -> Response:
        logger.error("the index is damaged: %s", exc)  # the operator must act, not the client
        return error_response(503, f"the index is damaged: {exc}")

    @app.exception_handler(IndexReplacedError)
    async def _replaced(request: Request, exc: IndexReplacedError) -> Response:
        logger.error("%s", exc)  # the operator must restart the server on the new index, not the client act
        return error_response(503, f"the index cannot be searched: {exc}")

    @app.exception_handler(TrivecError)
    async def _trivec(request: Request, exc: TrivecError) -> Response:
        return error_response(422, str(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal server error ({type(exc).__name__}); see the server log")
