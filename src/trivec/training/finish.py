"""The end of a training run: files moved into place only once complete, and processes closed cleanly."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch.distributed as dist


@contextmanager
def staged_output(output: Path) -> Iterator[Path]:
    """A temporary folder inside `output` to write the final model into; when the block ends without an
    error each file is moved into place, so `output` never holds a half-written model. The temporary
    folder is removed either way."""
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".final-", dir=output))
    try:
        yield staging
        for path in sorted(staging.rglob("*")):
            target = output / path.relative_to(staging)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)  # e.g. the empty 2_Normalize module folder
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def close_processes() -> None:
    """Wait for every process of a distributed run, then close its process group. A gloo group still open
    when the interpreter exits can abort a process after the model is saved ("terminate called without an
    active exception"), which fails the whole `torchrun`."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
