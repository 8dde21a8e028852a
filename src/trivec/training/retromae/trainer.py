"""`RetroMAETrainer`: the Hugging Face `Trainer` with RetroMAE's saving, its encoder and decoder losses logged.

Each save writes `encoder_model/` (the artefact fine-tuning starts from: masked-LM weights + tokenizer,
loadable by `AutoModel` and `trivec.models.M3Model`) and `model.safetensors` (encoder + decoder) so that
`resume_from_checkpoint` restores the whole model through the Trainer's own code path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from trivec.training.loss_parts import LossPartsTrainer
from trivec.training.retromae.modeling import ENCODER_DIR, RetroMAEModel

WEIGHTS_FILE = "model.safetensors"
LOSS_PARTS = ("encoder_loss", "decoder_loss")
TRAINING_ARGS_FILE = "training_args.bin"


class RetroMAETrainer(LossPartsTrainer):
    """Logs the encoder and decoder losses next to the total, and saves the encoder on its own."""

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        outputs = model(**inputs)
        self.record_loss_parts({name: getattr(outputs, name, None) for name in LOSS_PARTS})
        return (outputs.loss, outputs) if return_outputs else outputs.loss

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
