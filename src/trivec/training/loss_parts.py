"""A `Trainer` that logs the parts of its loss next to the total: what each objective (M3's dense / sparse /
ColBERT scores, RetroMAE's encoder and decoder) contributes, in the console, TensorBoard and `log.csv`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import Trainer


class LossPartsTrainer(Trainer):
    """Parts recorded at each step (`record_loss_parts`) are logged with the loss, each averaged over the steps
    since the last log record, as `part_prefix + name`."""

    part_prefix = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, list[float]] = {}

    def record_loss_parts(self, parts: Mapping[str, Any]) -> None:
        """One step's parts (numbers or one-element tensors); a None part (not computed) is left out."""
        for name, value in parts.items():
            if value is not None:
                self._parts.setdefault(name, []).append(float(value))

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[f"{self.part_prefix}{name}"] = round(sum(values) / len(values), 4)
                values.clear()
        super().log(logs, start_time)
