"""Index building in 1 vs N encode processes (`trivec index build --workers N`): wall time and peak memory.

    flock /tmp/trivec-cpu.lock python benchmarks/encode_workers.py --workers 1 2

Each run is the command line itself, `trivec index build --model default --corpus CORPUS` (Cranfield by
default) into a fresh directory, `--workers N` added for N > 1. The parent samples every 0.1 s the resident
memory (VmRSS) of the command's whole process tree — the command and its encode workers, summed — and
reports the peak of the sum and of the largest single process. Prints the CPU model and one JSON row per run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(os.environ.get("TRIVEC_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def tree_rss_kib(root: int) -> tuple[int, int]:
    """(sum, largest) VmRSS in KiB over `root` and its descendants (processes that vanish are skipped)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total = largest = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        total, largest = total + kib, max(largest, kib)
    return total, largest


def run(workers: int, corpus: Path, model: str, root: Path) -> dict[str, object]:
    command = ["trivec", "index", "build", "--model", model, "--corpus", str(corpus)]
    command += ["--index", str(root / f"w{workers}"), "--overwrite", "-q"]
    if workers > 1:
        command += ["--workers", str(workers)]
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak_sum = peak_one = 0
    while process.poll() is None:
        total, largest = tree_rss_kib(process.pid)
        peak_sum, peak_one = max(peak_sum, total), max(peak_one, largest)
        time.sleep(0.1)
    seconds = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed with exit code {process.returncode}")
    return {
        "workers": workers,
        "wall_s": round(seconds, 1),
        "peak_rss_tree_mib": round(peak_sum / 1024),
        "peak_rss_largest_process_mib": round(peak_one / 1024),
        "command": " ".join(command),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--corpus", type=Path, default=SHARED / "data" / "cranfield" / "corpus.jsonl")
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} ({len(os.sched_getaffinity(0))} cores)", flush=True)
    with tempfile.TemporaryDirectory(prefix="trivec-workers-") as root:
        for workers in args.workers:
            print(json.dumps(run(workers, args.corpus, args.model, Path(root))), flush=True)


if __name__ == "__main__":
    main()
