"""Load test of `trivec serve` on loopback: dynamic batching against one request at a time.

    python benchmarks/serve.py                  # 16 clients × 60 s per mode, default model, /v1/embeddings
    python benchmarks/serve.py --quick          # 8 clients × 10 s per mode
    python benchmarks/serve.py --model ../shared/fixtures/tiny-m3 --endpoint encode --outputs dense,sparse,colbert
    python benchmarks/serve.py --endpoint search   # /search: 1 client against 16 on one server with an index
    python benchmarks/serve.py --endpoint big      # one ~15 MB text: time to the 413, /health meanwhile, RSS

Each mode starts its own server process (`python -m trivec.cli serve`, 127.0.0.1 only) and is warmed up; the
modes are then measured in alternating slices (6 by default: batched, single, batched, …) so a drift in the
machine's speed hits both alike. In each slice N client tasks send requests back to back — every loop is bounded by a deadline and a request count, and
stops by itself. Reported per mode: requests/s, texts/s, p50/p99 latency, errors (non-200 answers or transport
failures; target 0), the mean merged batch (from the server's /metrics), the server's peak RSS (VmHWM) and CPU
seconds. Texts are real short queries (banking77 test set from ../shared/data). The load generator runs on the
same machine as the server, so both share its cores: the table prints the load average to say how busy it was.

`--endpoint search` measures POST /search instead (hybrid: dense ∪ sparse candidates, ColBERT re-rank, fusion)
on one dynamically batched server with an index (`--index`, by default Cranfield's 1,400 abstracts indexed with
the served model, built once into benchmarks/.cache/serve): one client against `--clients` clients in
alternating slices, with Cranfield's queries. The queries of concurrent requests are encoded in shared batches
by the dynamic batcher; the target is ≥ 3× the one-client throughput at 16 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trivec.retrieval import IndexSettings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
TEXTS_FILE = SHARED / "data" / "banking77" / "test.jsonl"
CACHE = REPO / "benchmarks" / ".cache" / "serve"
HOST = "127.0.0.1"  # loopback only


@dataclass
class ModeResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    texts: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mib: float = 0.0
    cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    mean_batch_texts: float = 0.0
    mean_batch_requests: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def read_texts(limit: int, source: Path = TEXTS_FILE) -> list[str]:
    if not source.is_file():
        raise SystemExit(f"{source} not found (set TRIVEC_SHARED to the shared/ folder)")
    texts = []
    with source.open(encoding="utf-8") as handle:
        for line in handle:
            texts.append(json.loads(line)["text"])
            if len(texts) >= limit:
                break
    return texts


def proc_status(pid: int, key: str) -> float:
    """A kB field of /proc/PID/status, in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_value(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def start_server(args: argparse.Namespace, port: int, batching: bool) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "trivec.cli", "serve", "--model", args.model, "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--max-wait-ms", str(args.max_wait_ms), "--batch-tokens", str(args.batch_tokens),
    ]  # fmt: skip
    if not batching:
        command.append("--no-batching")
    if args.endpoint == "search":
        command += ["--index", str(args.index)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"server exited during startup:\n{err}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit("server did not start in time")


def payload(args: argparse.Namespace, texts: list[str], i: int) -> tuple[str, dict[str, Any]]:
    chosen = [texts[(i * args.texts_per_request + j) % len(texts)] for j in range(args.texts_per_request)]
    if args.endpoint == "embeddings":
        return "/v1/embeddings", {"input": chosen, "model": "bench"}
    if args.endpoint == "search":
        return "/search", {"query": chosen[0], "top_k": 10}
    outputs = set(args.outputs.split(","))
    return "/encode", {
        "texts": chosen,
        "dense": "dense" in outputs,
        "sparse": "sparse" in outputs,
        "colbert": "colbert" in outputs,
    }


class RawConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads Content-Length answers.

    A lean load generator (as wrk is): it shares the machine's cores with the server, so it should spend as
    little CPU per request as it can. `--client httpx` uses httpx instead.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        data = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def client_loop(
    url: str, args: argparse.Namespace, texts: list[str], seed: int, deadline: float, max_requests: int,
    result: ModeResult | None,
) -> None:  # fmt: skip
    raw = RawConnection(HOST, int(url.rsplit(":", 1)[1]))
    http = httpx.AsyncClient(base_url=url, timeout=args.request_timeout) if args.client == "httpx" else None
    i = seed * 100_003
    try:
        for n in range(max_requests):  # bounded in count …
            if time.monotonic() >= deadline:  # … and in time
                return
            path, body = payload(args, texts, i)
            i += 1
            started = time.perf_counter()
            try:
                if http is not None:
                    response = await http.post(path, json=body)
                    status, data = response.status_code, response.content
                else:
                    encoded = json.dumps(body).encode()
                    status, data = await asyncio.wait_for(raw.post(path, encoded), args.request_timeout)
                ok, kind = status == 200, str(status)
                if ok and n % 50 == 0:  # check answers now and then (parsing all costs the server's CPU)
                    answer = json.loads(data)
                    ok = (
                        len(answer["results"]) > 0
                        if "query" in body
                        else len(answer["data"]) == len(body.get("input", body.get("texts", [])))
                    )
                    kind = "bad answer"
            except (
                httpx.HTTPError,
                OSError,
                asyncio.IncompleteReadError,
                asyncio.TimeoutError,
                ValueError,
            ) as exc:
                ok, kind = False, type(exc).__name__
                await raw.close()
            if result is None:
                continue
            result.latencies.append(time.perf_counter() - started)
            if ok:
                result.texts += len(body.get("input", body.get("texts", [body.get("query")])))
            else:
                result.errors += 1
                result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
    finally:
        await raw.close()
        if http is not None:
            await http.aclose()


async def load(
    url: str,
    args: argparse.Namespace,
    texts: list[str],
    seconds: float,
    result: ModeResult | None,
    clients: int | None = None,
) -> float:
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    tasks = [
        client_loop(url, args, texts, c, deadline, args.max_requests_per_client, result)
        for c in range(clients or args.clients)
    ]
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + args.request_timeout + 30)
    return time.perf_counter() - started


@dataclass
class ServedMode:
    """One server process under test and what has been measured of it so far."""

    result: ModeResult
    process: subprocess.Popen[bytes]
    url: str
    metrics_before: str = ""
    cpu_before: float = 0.0


def start_mode(args: argparse.Namespace, batching: bool) -> ServedMode:
    port = free_port()
    url = f"http://{HOST}:{port}"
    process = start_server(args, port, batching)
    served = ServedMode(ModeResult("dynamic batching" if batching else "one request at a time"), process, url)
    try:
        wait_healthy(url, process)
    except BaseException:
        stop_mode(served)
        raise
    return served


def run_modes(args: argparse.Namespace, texts: list[str], modes: list[bool]) -> list[ModeResult]:
    """Start one server per mode, warm each up, then measure them in alternating slices (`--slices`): the
    machine's speed drifts over minutes (other tenants, thermal), and interleaving makes both modes see the
    same drift instead of one getting the good minute."""
    served = [start_mode(args, batching) for batching in modes]
    try:
        for mode in served:
            asyncio.run(load(mode.url, args, texts, args.warmup, None))
            mode.metrics_before = httpx.get(f"{mode.url}/metrics", timeout=30).text
            mode.cpu_before = cpu_seconds(mode.process.pid)
        for _ in range(args.slices):
            for mode in served:
                client_before = time.process_time()
                mode.result.seconds += asyncio.run(
                    load(mode.url, args, texts, args.duration / args.slices, mode.result)
                )
                mode.result.client_cpu_s += time.process_time() - client_before
        for mode in served:
            finish_mode(mode)
    finally:
        for mode in served:
            stop_mode(mode)
    return [mode.result for mode in served]


def finish_mode(mode: ServedMode) -> None:
    result = mode.result
    result.cpu_s = cpu_seconds(mode.process.pid) - mode.cpu_before
    result.peak_rss_mib = proc_status(mode.process.pid, "VmHWM")
    metrics_after = httpx.get(f"{mode.url}/metrics", timeout=30).text
    batches = metric_value(metrics_after, "trivec_batch_texts_count") - metric_value(
        mode.metrics_before, "trivec_batch_texts_count"
    )
    if batches:
        for attr, metric in (("mean_batch_texts", "trivec_batch_texts_sum"),
                             ("mean_batch_requests", "trivec_batch_requests_sum")):  # fmt: skip
            total = metric_value(metrics_after, metric) - metric_value(mode.metrics_before, metric)
            setattr(result, attr, total / batches)


def stop_mode(mode: ServedMode) -> None:
    process = mode.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def search_index(args: argparse.Namespace) -> Path:
    """The index /search runs on: `--index`, else Cranfield indexed with the served model (built once)."""
    if args.index is not None:
        return Path(args.index)
    # the index defaults are part of the name: an index built under older defaults is not measured as today's
    defaults = hashlib.sha256(json.dumps(IndexSettings().to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    path = CACHE / f"{args.search_set}-{Path(args.model).name}-{defaults}"
    if not (path / "MANIFEST.json").is_file():
        print(f"building {path} …", file=sys.stderr, flush=True)
        corpus = SHARED / "data" / args.search_set / "corpus.jsonl"
        command = [sys.executable, "-m", "trivec.cli", "index", "build", "-q", "--model", args.model,
                   "--corpus", str(corpus), "--index", str(path), "--overwrite"]  # fmt: skip
        subprocess.run(command, check=True)
    return path


def run_search(args: argparse.Namespace, texts: list[str]) -> list[ModeResult]:
    """One batched server with an index; one client and `--clients` clients measured in alternating slices."""
    served = start_mode(args, batching=True)
    counts = [1, args.clients]
    results = [ModeResult(f"{c} client{'s' if c > 1 else ''}") for c in counts]
    try:
        asyncio.run(load(served.url, args, texts, args.warmup, None))
        stats = {c: [0.0, 0.0, 0.0] for c in counts}  # per client count: batches, texts, requests merged
        for _ in range(args.slices):
            for count, result in zip(counts, results, strict=True):
                before = httpx.get(f"{served.url}/metrics", timeout=30).text
                cpu_before = cpu_seconds(served.process.pid)
                client_before = time.process_time()
                result.seconds += asyncio.run(
                    load(served.url, args, texts, args.duration / args.slices, result, clients=count)
                )
                result.cpu_s += cpu_seconds(served.process.pid) - cpu_before
                result.client_cpu_s += time.process_time() - client_before
                after = httpx.get(f"{served.url}/metrics", timeout=30).text
                for slot, metric in enumerate(
                    ("trivec_batch_texts_count", "trivec_batch_texts_sum", "trivec_batch_requests_sum")
                ):
                    stats[count][slot] += metric_value(after, metric) - metric_value(before, metric)
        for count, result in zip(counts, results, strict=True):
            batches, merged_texts, merged_requests = stats[count]
            if batches:
                result.mean_batch_texts = merged_texts / batches
                result.mean_batch_requests = merged_requests / batches
            result.peak_rss_mib = proc_status(served.process.pid, "VmHWM")
    finally:
        stop_mode(served)
    return results


def encoder_ceiling(args: argparse.Namespace, texts: list[str], repeats: int = 30) -> tuple[float, float]:
    """CPU ms per text of the encoder alone (no HTTP) at batch 1 and at batch `clients`: how much merging
    can gain at most on this machine (a compute-bound model gains little from batching on a CPU)."""
    import torch

    from trivec import Embedder

    if args.threads:
        torch.set_num_threads(args.threads)
    embedder = Embedder.from_pretrained(args.model, device="cpu")
    outputs = set(args.outputs.split(",")) if args.endpoint == "encode" else {"dense"}
    kinds = {"dense": "dense" in outputs, "sparse": "sparse" in outputs, "colbert": "colbert" in outputs}
    per_text = []
    for size in (1, args.clients):
        embedder.encode(texts[:size], **kinds)
        started = time.process_time()
        for r in range(repeats):
            embedder.encode(texts[r * size : (r + 1) * size], **kinds)
        per_text.append((time.process_time() - started) / (repeats * size) * 1000)
    return per_text[0], per_text[1]


def table(results: list[ModeResult]) -> str:
    header = (
        "| mode | requests | req/s | texts/s | p50 ms | p99 ms | errors | mean batch (texts / requests) "
        "| server peak RSS MiB | server CPU s | client CPU s |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in results:
        lines.append(
            f"| {r.name} | {r.requests} | {r.requests / r.seconds:.1f} | {r.texts / r.seconds:.1f} "
            f"| {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.errors} "
            f"| {r.mean_batch_texts:.1f} / {r.mean_batch_requests:.1f} | {r.peak_rss_mib:.0f} | {r.cpu_s:.1f} "
            f"| {r.client_cpu_s:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="minilm-m3", help="model served (default: minilm-m3, all-MiniLM-L6-v2 with heads)"
    )
    parser.add_argument("--endpoint", choices=["embeddings", "encode", "search", "big"], default="embeddings")
    parser.add_argument(
        "--index",
        type=Path,
        default=None,
        help="for --endpoint search: the index (default: --search-set's, built once)",
    )
    parser.add_argument(
        "--search-set",
        choices=["cranfield", "trecqa"],
        default="cranfield",
        help="for --endpoint search: the corpus (Cranfield: 1,400 abstracts of ≈ 220 tokens; TREC QA: 2,358 "
        "sentences of ≈ 35) indexed with the served model unless --index is given, and its queries",
    )
    parser.add_argument("--outputs", default="dense", help="for --endpoint encode: dense,sparse,colbert")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds before each run")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--max-requests-per-client", type=int, default=200_000, help="hard bound per client")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads of the server (default 0: the server's own default, torch's one per core)",
    )
    parser.add_argument(
        "--modes", default="batched,single", help="batched, single, or both (comma-separated)"
    )
    parser.add_argument(
        "--slices", type=int, default=6, help="measure the modes in this many alternating slices each"
    )
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator")
    parser.add_argument("--quick", action="store_true", help="8 clients × 10 s per mode, 2 s warm-up")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the encoder-alone measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.duration, args.warmup = min(args.clients, 8), min(args.duration, 10.0), 2.0
    if args.endpoint == "search":
        search_main(args)
        return
    if args.endpoint == "big":
        big_request(args)
        return
    texts = read_texts(3080)
    load_before = os.getloadavg()
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in ("batched", "single"):
            raise SystemExit(f"--modes: unknown mode {mode!r}")
    results = run_modes(args, texts, [mode == "batched" for mode in modes])
    load_after = os.getloadavg()
    target = "/v1/embeddings" if args.endpoint == "embeddings" else f"/encode ({args.outputs})"
    print(
        f"\ntrivec serve — model {args.model}, POST {target}, {args.texts_per_request} text(s)/request "
        f"(banking77 test queries), {args.clients} clients × {args.duration:.0f} s per mode "
        f"(in {args.slices} alternating slices) after "
        f"{args.warmup:.0f} s warm-up, loopback {HOST}, torch threads {args.threads or os.cpu_count()}, "
        f"{os.cpu_count()} cores shared with the load generator; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}\n"
    )
    print(table(results))
    by_name = {r.name: r for r in results}
    if len(by_name) == 2:
        fast, slow = by_name["dynamic batching"], by_name["one request at a time"]
        speedup = (fast.requests / fast.seconds) / max(slow.requests / slow.seconds, 1e-9)
        print(f"\nthroughput, dynamic batching / one at a time: {speedup:.2f}× (target ≥ 3×)")
    if not args.no_ceiling:
        one, many = encoder_ceiling(args, texts)
        print(
            f"encoder alone (no HTTP), CPU ms per text: {one:.2f} at batch 1, {many:.2f} at batch {args.clients} "
            f"→ merging can gain at most about {one / many:.2f}× here"
        )
    for r in results:
        if r.error_kinds:
            print(f"errors in {r.name}: {r.error_kinds}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "mode": r.name,
                        "requests": r.requests,
                        "seconds": r.seconds,
                        "req_per_s": r.requests / r.seconds,
                        "p50_ms": r.percentile(50),
                        "p99_ms": r.percentile(99),
                        "mean_latency_ms": statistics.fmean(r.latencies) * 1000 if r.latencies else None,
                        "errors": r.errors,
                        "peak_rss_mib": r.peak_rss_mib,
                        "server_cpu_s": r.cpu_s,
                        "client_cpu_s": r.client_cpu_s,
                        "mean_batch_texts": r.mean_batch_texts,
                    }
                    for r in results
                ],
                indent=2,
            )
        )


def big_request(args: argparse.Namespace, megabytes: float = 15.0) -> None:
    """One text of `megabytes` MB (under the 16 MiB body limit) to /v1/embeddings: how long until the answer,
    what /health took meanwhile (asked every 10 ms), and the server's memory before, at its peak and after."""
    import threading

    served = start_mode(args, batching=True)
    try:
        pid, url = served.process.pid, served.url
        text = "quantum chromodynamics " * int(megabytes * 1e6 / 23)
        body = json.dumps({"input": text}).encode()
        rss_before = proc_status(pid, "VmRSS")
        # reset the peak to now (Linux: clear_refs 5), so that the peak read afterwards is the request's
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        answer: dict[str, Any] = {}

        def send() -> None:
            started = time.perf_counter()
            response = httpx.post(
                f"{url}/v1/embeddings",
                content=body,
                headers={"content-type": "application/json"},
                timeout=600,
            )
            answer.update(
                status=response.status_code, seconds=time.perf_counter() - started, text=response.text
            )

        worker = threading.Thread(target=send)
        health: list[float] = []
        with httpx.Client(timeout=60) as client:
            client.get(f"{url}/health")
            worker.start()
            while worker.is_alive():
                started = time.perf_counter()
                client.get(f"{url}/health")
                health.append(time.perf_counter() - started)
                time.sleep(0.01)
        worker.join()
        time.sleep(1.0)
        rss_after = proc_status(pid, "VmRSS")
        hwm_after = proc_status(pid, "VmHWM")
    finally:
        stop_mode(served)
    message = json.loads(answer["text"]).get("error", {}).get("message", "")[:120]
    print(
        f"\ntrivec serve — model {args.model}: one {len(body) / 1e6:.1f} MB request ({len(text):,} characters) to "
        f"/v1/embeddings\n"
        f"- answer {answer['status']} after {answer['seconds'] * 1000:.0f} ms: {message}\n"
        f"- /health meanwhile: {len(health)} answers, max {max(health) * 1000:.1f} ms, "
        f"median {statistics.median(health) * 1000:.1f} ms\n"
        f"- server RSS {rss_before:.0f} MiB before, peak while it was handled {hwm_after:.0f} MiB (+"
        f"{hwm_after - rss_before:.0f}), {rss_after:.0f} MiB after"
    )


def search_main(args: argparse.Namespace) -> None:
    args.index = search_index(args)
    texts = read_texts(1000, SHARED / "data" / args.search_set / "queries.jsonl")
    load_before = os.getloadavg()
    results = run_search(args, texts)
    load_after = os.getloadavg()
    print(
        f"\ntrivec serve — model {args.model}, POST /search (hybrid, top 10; {args.search_set} queries) on {args.index}, "
        f"1 client and {args.clients} clients in {args.slices} alternating slices, {args.duration:.0f} s each "
        f"in all, after {args.warmup:.0f} s warm-up; loopback, torch threads {args.threads or os.cpu_count()}, "
        f"{os.cpu_count()} cores shared with the load generator; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f}\n"
    )
    print(table(results))
    one, many = results
    gain = (many.requests / many.seconds) / max(one.requests / one.seconds, 1e-9)
    print(f"\n/search throughput, {args.clients} clients / 1 client: {gain:.2f}× (target ≥ 3×)")
    for r in results:
        if r.error_kinds:
            print(f"errors with {r.name}: {r.error_kinds}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "clients": r.name,
                        "requests": r.requests,
                        "req_per_s": r.requests / r.seconds,
                        "p50_ms": r.percentile(50),
                        "p99_ms": r.percentile(99),
                        "errors": r.errors,
                        "mean_batch_requests": r.mean_batch_requests,
                        "server_cpu_s": r.cpu_s,
                    }
                    for r in results
                ]
                + [{"gain": gain}],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
