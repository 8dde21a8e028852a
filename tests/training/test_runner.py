"""The shared training sequence (`trivec.training.runner`) on a tiny regression `Trainer`: resume rules,
the CSV log, and the final files written only once complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import Trainer, TrainingArguments

from trivec.errors import InputError
from trivec.training.runner import RECIPE_FILE, TRAINER_STATE_FILE, resolve_resume, run_training


class Line(torch.nn.Module):
    """y = w·x + b, trained on a squared error (enough for the Trainer to step, log and checkpoint)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ((self.linear(x).squeeze(-1) - y) ** 2).mean()}


def line_trainer(output: Path, max_steps: int) -> Trainer:
    rows = [{"x": torch.tensor([i, 1.0]), "y": torch.tensor(2.0 * i)} for i in range(8)]
    args = TrainingArguments(
        output_dir=str(output), max_steps=max_steps, per_device_train_batch_size=2, learning_rate=1e-2,
        logging_steps=1, save_strategy="steps", save_steps=2, use_cpu=True, report_to=[], disable_tqdm=True,
    )  # fmt: skip
    return Trainer(model=Line(), args=args, train_dataset=rows)


def test_resume_last_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    for output in (tmp_path / "missing", tmp_path):
        with pytest.raises(InputError, match="no checkpoint-\\* folder in") as caught:
            resolve_resume("last", output)
        assert caught.value.for_cli() == f"--resume last: no checkpoint-* folder in {output}"
    with pytest.raises(InputError) as caught:
        resolve_resume(tmp_path / "nowhere", tmp_path)
    assert caught.value.for_cli() == f"--resume {tmp_path / 'nowhere'}: no such checkpoint directory"
    assert resolve_resume(None, tmp_path) is None and resolve_resume(False, tmp_path) is None


def test_resume_last_is_the_newest_checkpoint(tmp_path: Path) -> None:
    for step in (2, 10, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
    assert resolve_resume("last", tmp_path) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(True, tmp_path) == str(tmp_path / "checkpoint-10")
    assert resolve_resume(str(tmp_path / "checkpoint-2"), tmp_path) == str(tmp_path / "checkpoint-2")


def test_a_wrong_resume_fails_before_the_trainer_is_built(tmp_path: Path) -> None:
    built: list[bool] = []

    def build() -> Trainer:
        built.append(True)
        return line_trainer(tmp_path, 2)

    with pytest.raises(InputError, match="no checkpoint"):
        run_training(build, output_dir=tmp_path, resume="last", recipe=dict)
    assert not built


def test_a_run_saves_model_state_recipe_and_log_then_resumes(tmp_path: Path) -> None:
    settings: dict[str, Any] = {}

    def build(steps: int) -> Trainer:
        settings["max_steps"] = steps  # filled while building: the recipe is read after training
        return line_trainer(tmp_path, steps)

    out = run_training(lambda: build(2), output_dir=tmp_path, resume=None, recipe=lambda: settings)
    assert out == tmp_path and (out / "model.safetensors").is_file() and (out / "checkpoint-2").is_dir()
    assert json.loads((out / RECIPE_FILE).read_text(encoding="utf-8")) == {"max_steps": 2}
    assert (out / "log.csv").read_text(encoding="utf-8").count("\n") >= 3  # header, 2 steps, summary
    run_training(lambda: build(4), output_dir=tmp_path, resume="last", recipe=lambda: settings)
    state = json.loads((out / TRAINER_STATE_FILE).read_text(encoding="utf-8"))
    assert state["global_step"] == 4 and json.loads((out / RECIPE_FILE).read_text())["max_steps"] == 4
    assert not list(out.glob(".final-*"))


def test_the_model_is_written_only_once_complete(tmp_path: Path) -> None:
    """A save that fails half-way leaves no model, state or recipe in the output folder."""

    def broken_save(trainer: Trainer, folder: Path) -> None:
        trainer.save_model(str(folder))
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_training(
            lambda: line_trainer(tmp_path, 2),
            output_dir=tmp_path,
            resume=None,
            recipe=dict,
            save_model=broken_save,
        )
    assert (tmp_path / "checkpoint-2").is_dir()  # the Trainer's checkpoints are its own
    for name in ("model.safetensors", TRAINER_STATE_FILE, RECIPE_FILE, ".final-*"):
        assert not list(tmp_path.glob(name)), name
