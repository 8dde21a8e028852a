"""Live servers for the serving tests: real uvicorn on a free 127.0.0.1 port, one per module."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import TINY_M3

TINY = str(TINY_M3)
API_KEY = "test-key-7f3a"

TEXTS = [
    "What is BGE M3?",
    "BGE M3 is an embedding model supporting dense retrieval, lexical matching and multi-vector interaction.",
    "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Hello",
    "",
]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0.0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return 0.0


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a JSON error answer (asserts the shape)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == response.status_code and isinstance(error["message"], str) and error["message"]
    return error
