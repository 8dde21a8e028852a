"""`trivec serve` as a user runs it: a real process, an API key from the environment, graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.serving.conftest import TEXTS, TINY, error_of
from trivec import Embedder
from trivec.cli import app as cli_app

KEY_VAR = "TRIVEC_TEST_SERVE_KEY"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trivec.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = start(
        "--model", TINY, "--port", str(port), "--api-key-env", KEY_VAR, "--max-wait-ms", "1500",
        "--max-tokens", "128", env={KEY_VAR: "s3cret"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_serve_uses_the_key_from_the_environment(
    served: tuple[str, subprocess.Popen[str]], tiny: Embedder
) -> None:
    url, _ = served
    denied = httpx.post(f"{url}/v1/embeddings", json={"input": "x"})
    assert denied.status_code == 401 and "missing API key" in error_of(denied)["message"]
    ok = httpx.post(
        f"{url}/v1/embeddings", json={"input": TEXTS}, headers={"Authorization": "Bearer s3cret"}, timeout=60
    )
    assert ok.status_code == 200
    got = np.array([d["embedding"] for d in ok.json()["data"]])
    np.testing.assert_allclose(got, tiny.encode(TEXTS, max_length=128).dense, atol=1e-6)


def test_sigterm_finishes_in_flight_requests_then_exits(served: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = served
    answer: dict[str, httpx.Response] = {}

    def call() -> None:  # sits in the 1.5 s merge window while the signal arrives
        answer["r"] = httpx.post(
            f"{url}/encode",
            json={"texts": TEXTS, "sparse": True},
            headers={"Authorization": "Bearer s3cret"},
            timeout=60,
        )

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/health").json()["queue"]["requests"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert answer["r"].status_code == 200, answer["r"].text
    assert len(answer["r"].json()["data"]) == len(TEXTS)
    output, _ = process.communicate(timeout=60)
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "encoder stopped after finishing" in output, output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)


def test_serve_refuses_a_missing_key_variable_and_bad_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIVEC_NO_SUCH_VAR", raising=False)
    missing = CliRunner().invoke(cli_app, ["serve", "--model", TINY, "--api-key-env", "TRIVEC_NO_SUCH_VAR"])
    assert missing.exit_code == 2
    assert "TRIVEC_NO_SUCH_VAR: that environment variable is not set" in missing.stderr
    bad = CliRunner().invoke(cli_app, ["serve", "--model", TINY, "--max-texts", "10", "--queue-size", "5"])
    assert bad.exit_code == 2
    assert "--queue-size (5) must be at least --max-texts (10)" in bad.stderr


def test_serve_on_a_busy_port_is_one_clear_line_before_the_model_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trivec.serving import server

    loaded = []
    monkeypatch.setattr(server, "build_app", lambda config: loaded.append(config))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(cli_app, ["serve", "--model", TINY, "--port", str(port)])
    assert busy.exit_code == 2 and not loaded
    assert f"trivec: error: --port {port}: cannot listen on 127.0.0.1 (Address already in use)" in busy.stderr
