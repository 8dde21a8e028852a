"""The training log as CSV, written as the Hugging Face `Trainer` logs (one row per log record)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

CSV_LOG_FILE = "log.csv"


class CSVLogCallback(TrainerCallback):
    """Append every log record (step, epoch, losses, learning rate, grad norm, …) to a CSV file; the header
    widens when a record brings a new key. Used by every training recipe (`output_dir/log.csv`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.columns: list[str] = []

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        row = {"step": state.global_step, **logs}
        if not self.columns and self.path.is_file():
            with self.path.open(encoding="utf-8") as handle:
                self.columns = next(csv.reader(handle), [])
        new = [k for k in row if k not in self.columns]
        if new or not self.path.is_file():
            self._rewrite(self.columns + new)
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow(row)

    def _rewrite(self, columns: list[str]) -> None:
        """Widen the header when a new key appears (e.g. the final train_runtime record)."""
        rows: list[dict[str, str]] = []
        if self.path.is_file():
            with self.path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        self.columns = columns
