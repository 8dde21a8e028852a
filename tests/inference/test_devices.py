"""What a model cannot be loaded as or on is a one-line error before it loads: a device the machine lacks
or a name torch does not know (it was torch's assertion, `Torch not compiled with CUDA enabled`, from inside
the first transfer), a cross-encoder asked for embeddings."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import TINY_M3, TINY_RERANKER
from trivec import Embedder
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference.devices import resolve_device
from trivec.inference.reranker import Reranker

ABSENT = f"cuda:{torch.cuda.device_count()}"  # one past the last CUDA device: none on a CPU machine


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(InputError, match=r"unknown device 'tpu' \(cpu, cuda, cuda:N or mps\)"):
        resolve_device("tpu")
    with pytest.raises(
        InputError, match=rf"device '{ABSENT}' is not available \(\d+ CUDA device\(s\) here\)"
    ):
        resolve_device(ABSENT)


def test_models_refuse_a_device_they_cannot_run_on() -> None:
    with pytest.raises(InputError, match="is not available"):
        Embedder.from_pretrained(TINY_M3, device=ABSENT)
    with pytest.raises(InputError, match="unknown device"):
        Reranker.from_pretrained(TINY_RERANKER, device="tpu")


def test_commands_say_it_in_one_line(tmp_path: pytest.TempPathFactory) -> None:
    pairs = tmp_path / "pairs.jsonl"  # type: ignore[operator]
    pairs.write_text('{"query": "q", "passage": "p"}\n', encoding="utf-8")
    result = CliRunner().invoke(
        app, ["rerank", "-m", str(TINY_RERANKER), "-p", str(pairs), "--device", ABSENT]
    )
    assert result.exit_code == 2 and "is not available" in result.stderr and "Traceback" not in result.output


def test_a_cross_encoder_is_not_loaded_as_an_embedding_model(tmp_path: pytest.TempPathFactory) -> None:
    """`trivec score -m <reranker>` printed cosines of a classifier's backbone (one above 1)."""
    from trivec.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"is a cross-encoder reranker .*load it with Reranker"):
        Embedder.from_pretrained(TINY_RERANKER)
    pairs = tmp_path / "pairs.jsonl"  # type: ignore[operator]
    pairs.write_text('{"query": "q", "passage": "p"}\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["score", "-m", str(TINY_RERANKER), "--pairs", str(pairs)])
    assert result.exit_code == 2 and "trivec rerank" in result.stderr
