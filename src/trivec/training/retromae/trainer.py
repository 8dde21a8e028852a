"""`RetroMAETrainer`: the Hugging Face `Trainer` with RetroMAE's saving and loss logging, and a CSV log.

Each save writes `encoder_model/` (the artefact fine-tuning starts from: masked-LM weights + tokenizer,
loadable by `AutoModel` and `trivec.models.M3Model`) and `model.safetensors` (encoder + decoder) so that
`resume_from_checkpoint` restores the whole model through the Trainer's own code path.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from trivec.training.retromae.modeling import ENCODER_DIR, RetroMAEModel

WEIGHTS_FILE = "model.safetensors"
TRAINING_ARGS_FILE = "training_args.bin"
CSV_LOG_FILE = "log.csv"


class RetroMAETrainer(Trainer):
    """Logs the encoder and decoder losses next to the total, and saves the encoder on its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, list[float]] = {"encoder_loss": [], "decoder_loss": []}

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        outputs = model(**inputs)
        for name in self._parts:
            value = getattr(outputs, name, None)
            if value is not None:
                self._parts[name].append(float(value))
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            for name, values in self._parts.items():
                if values:
                    logs[name] = round(sum(values) / len(values), 4)
                values.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = str(output_dir if output_dir is not None else self.args.output_dir)
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        assert isinstance(model, RetroMAEModel)
        tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
        model.save_encoder(Path(output_dir) / ENCODER_DIR, tokenizer)  # type: ignore[arg-type]
        state = state_dict if state_dict is not None else model.state_dict()
        safetensors.torch.save_file(
            _untie(state), os.path.join(output_dir, WEIGHTS_FILE), metadata={"format": "pt"}
        )
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_FILE))


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): give repeats their own copy."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()))
        out[name] = tensor.detach().clone().contiguous() if key in seen else tensor.detach().contiguous()
        seen.add(key)
    return out


class CSVLogCallback(TrainerCallback):
    """Append every log record (step, epoch, losses, learning rate, grad norm, …) to `output_dir/log.csv`."""

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
