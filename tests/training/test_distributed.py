"""Cross-device negatives: 2 CPU processes (gloo, DDP) give the loss and gradients of 1 process on the
concatenated batch — with plain InfoNCE, with teacher distillation + the M3 unified loss, and through the
gradient cache; and `torchrun` runs the `trivec train contrastive` command unchanged with the same result."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.conftest import TINY_M3
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.models import M3Model
from trivec.training.arguments import LossArguments
from trivec.training.collator import ContrastiveCollator
from trivec.training.gradcache import grad_cache_step
from trivec.training.modeling import ContrastiveModel, set_dropout

GROUP = 3
SCENARIOS: dict[str, dict[str, Any]] = {
    "dense": {"loss": {}, "teacher": False, "sub_batch": None},
    "unified-kd": {
        "loss": {"unified_finetuning": True, "use_self_distill": True, "kd_loss_type": "m3_kd_loss"},
        "teacher": True,
        "sub_batch": None,
    },
    "dense-gradcache": {"loss": {}, "teacher": True, "sub_batch": 3},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def global_batch() -> tuple[list[str], list[str], torch.Tensor]:
    """4 queries × 3 passages; rank r of 2 takes queries 2r, 2r+1 and their groups."""
    rows = synthetic_rows(4, negatives=GROUP - 1, seed=2)
    rows[1]["query"] += " with a much longer question so that the padding differs between ranks"
    queries = [r["query"] for r in rows]
    passages = [t for r in rows for t in (*r["pos"], *r["neg"])]
    teacher = torch.tensor([[3.0, 0.5, -1.0], [1.0, 2.0, 0.0], [0.3, -0.2, 0.1], [4.0, 1.0, 1.5]]).flatten()
    return queries, passages, teacher


def run(scenario: str, rank: int, world: int, model: Any, core: ContrastiveModel) -> torch.Tensor:
    """Forward + backward of this process's part of the global batch; returns the reported loss."""
    queries, passages, teacher = global_batch()
    per = len(queries) // world
    collator = ContrastiveCollator(core.encoder.tokenizer, 32, 128)
    q = collator.tokenize(queries[rank * per : (rank + 1) * per], 32)
    p = collator.tokenize(passages[rank * per * GROUP : (rank + 1) * per * GROUP], 128)
    inputs: dict[str, Any] = {"query": q, "passage": p}
    spec = SCENARIOS[scenario]
    if spec["teacher"]:
        inputs["teacher_scores"] = teacher[rank * per * GROUP : (rank + 1) * per * GROUP]
    if spec["sub_batch"]:
        no_sync = model.no_sync if hasattr(model, "no_sync") else contextlib.nullcontext
        out = grad_cache_step(
            model,
            inputs,
            spec["sub_batch"],
            backward=lambda loss: loss.backward(),
            no_sync=no_sync,
            autocast=contextlib.nullcontext,
            unwrap=lambda m: m.module if hasattr(m, "module") else m,
        )
        return out.loss
    out = model(**inputs)
    (out.loss * out.gradient_scale).backward()
    return out.loss.detach()


def build(scenario: str) -> ContrastiveModel:
    encoder = M3Model.from_pretrained(TINY_M3)
    set_dropout(encoder.backbone, 0.0)
    loss = LossArguments(negatives_cross_device=True, **SCENARIOS[scenario]["loss"])
    return ContrastiveModel(encoder.train(), loss)


def run_ddp(scenario: str, rank: int, world: int, out_dir: str) -> None:
    core = build(scenario)
    ddp = torch.nn.parallel.DistributedDataParallel(core, find_unused_parameters=True)
    loss = run(scenario, rank, world, ddp, core)
    grads = {n: p.grad for n, p in core.named_parameters() if p.grad is not None}
    if rank == 0:
        torch.save({"loss": loss, "grads": grads}, os.path.join(out_dir, f"{scenario}.pt"))


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for scenario in SCENARIOS:
            run_ddp(scenario, rank, world, out_dir)
            gc.collect()  # free each DDP reducer while the process group is alive (else teardown can hang)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2-process run did not finish in 300 s")
    return out


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_two_processes_equal_one_process_on_the_concatenated_batch(
    two_process_results: Path, scenario: str
) -> None:
    core = build(scenario)
    single_loss = run(scenario, 0, 1, core, core)
    single = {n: p.grad for n, p in core.named_parameters() if p.grad is not None}
    saved = torch.load(two_process_results / f"{scenario}.pt")
    assert float(saved["loss"]) == pytest.approx(float(single_loss), abs=1e-5)
    assert saved["grads"].keys() == single.keys() and len(single) > 10
    for name, grad in single.items():
        torch.testing.assert_close(saved["grads"][name], grad, atol=2e-5, rtol=1e-4, msg=name)


def run_bounded(
    command: list[str], env: dict[str, str], seconds: int = 600
) -> subprocess.CompletedProcess[str]:
    """Run `command` in a process group of its own; past `seconds` — or on any interruption — kill the whole
    group (torchrun's workers too, which would otherwise hold the CPUs and ports for the tests after), and
    on a timeout fail with its output."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        kill_group(process)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a descendant outside the group still holds the pipes
            out, err = "", "(no output: the pipes stayed open)"
        pytest.fail(
            f"{' '.join(command[:6])} … ran past {seconds} s; its last output:\n{(out + err)[-3000:]}"
        )
    finally:
        kill_group(process)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process group `process` leads (nothing when it has already gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def test_torchrun_trains_the_cli_command_like_one_process_with_the_doubled_batch(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 trivec train contrastive` (gloo on CPU) with batch 2 per process and
    cross-device negatives ends with the weights of one process with batch 4 (plain SGD, 2 steps)."""
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(8, negatives=2))
    common = [
        "train", "contrastive", "--model", str(TINY_M3), "--data", str(data), "--group-size", "3",
        "--max-steps", "2", "--learning-rate", "0.5", "--cross-device-negatives", "--seed", "5",
        "--set", "dropout=0", "--set", "optim=sgd", "--set", "lr_scheduler_type=constant",
        "--set", "warmup_steps=0", "--set", "max_grad_norm=0", "--set", "weight_decay=0",
        "--set", "report_to=[]", "--set", "disable_tqdm=true", "--set", "save_strategy=no",
        "--set", "use_cpu=true", "--set", "logging_steps=1",
    ]  # fmt: skip
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "trivec.cli"]  # fmt: skip
    two = run_bounded([*launcher, *common, "--batch-size", "2", "--output", str(tmp_path / "two")], env)
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_bounded(
        [sys.executable, "-m", "trivec.cli", *common, "--batch-size", "4", "--output", str(tmp_path / "one")],
        env,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = (
        load_file(tmp_path / "two" / "model.safetensors"),
        load_file(tmp_path / "one" / "model.safetensors"),
    )
    start = load_file_or_bin(TINY_M3)
    moved = max(float((a[k] - start[k]).abs().max()) for k in a if k in start)
    assert moved > 1e-3  # training did change the weights
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4, msg=key)


def load_file_or_bin(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
