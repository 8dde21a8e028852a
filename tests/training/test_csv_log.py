"""The CSV training log every recipe writes: one row per log record, the header widened by new keys."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerControl, TrainerState, TrainingArguments

from trivec.training.csv_log import CSVLogCallback


def test_rows_are_kept_when_a_record_brings_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "run" / "log.csv"
    log = CSVLogCallback(path)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[])
    state, control = TrainerState(), TrainerControl()
    for step, logs in [
        (10, {"loss": 1.5, "learning_rate": 1e-5}),
        (20, {"loss": 1.25, "learning_rate": 2e-5}),
    ]:
        state.global_step = step
        log.on_log(args, state, control, logs=logs)
    state.global_step = 20
    log.on_log(args, state, control, logs={"train_runtime": 12.5, "loss": 1.3})
    log.on_log(args, state, control, logs=None)  # nothing logged: nothing written
    # a second callback on the same file (a resumed run) appends under the same header
    state.global_step = 30
    CSVLogCallback(path).on_log(args, state, control, logs={"loss": 1.0})
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames == ["step", "loss", "learning_rate", "train_runtime"]
    assert [(r["step"], r["loss"], r["train_runtime"]) for r in rows] == [
        ("10", "1.5", ""),
        ("20", "1.25", ""),
        ("20", "1.3", "12.5"),
        ("30", "1.0", ""),
    ]


def test_only_the_main_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    state = TrainerState(is_world_process_zero=False)
    CSVLogCallback(path).on_log(
        TrainingArguments(output_dir=str(tmp_path), report_to=[]), state, TrainerControl(), logs={"loss": 1.0}
    )
    assert not path.exists()
