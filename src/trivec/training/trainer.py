"""`ContrastiveTrainer`: the Hugging Face `Trainer` with contrastive batches, gradient cache and M3 saving.

What it changes: the DataLoader (the dataset yields whole local batches, in a plan fixed by seed and epoch),
the training step (loss scaled for cross-device negatives, optional gradient cache), the loss parts in the
log, and saving — every checkpoint and the final model are written in the BAAI layout with
`M3Model.save_pretrained` (encoder + head files + tokenizer + sentence-transformers files), so a checkpoint
loads in trivec and its dense view in sentence-transformers; resuming reads the weights back from that layout.
Everything else (optimizer, schedule, mixed precision, DDP / DeepSpeed via Accelerate, TensorBoard, progress
bar, checkpoint rotation) is the Trainer's own.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, SequentialSampler
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import seed_worker

from trivec.errors import CheckpointError
from trivec.models import M3Model
from trivec.models.lora import LORA_DIR, is_lora, load_adapter_weights
from trivec.training.dataset import ContrastiveDataset
from trivec.training.gradcache import grad_cache_step
from trivec.training.loss_parts import LossPartsTrainer
from trivec.training.modeling import ContrastiveModel, ContrastiveOutput
from trivec.training.optimizer import head_rate_optimizer

TRAINING_ARGS_FILE = "training_args.bin"


class ContrastiveTrainer(LossPartsTrainer):
    """`Trainer` for `ContrastiveModel` on a `ContrastiveDataset`; the loss parts logged as `loss_<part>`."""

    part_prefix = "loss_"

    def __init__(
        self,
        *args: Any,
        sub_batch_size: int | None = None,
        heads_learning_rate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sub_batch_size = sub_batch_size
        self.heads_learning_rate = heads_learning_rate
        self.add_callback(EpochPlanCallback())
        if sub_batch_size and self.is_deepspeed_enabled:
            raise ValueError("sub_batch_size (gradient cache) does not work with DeepSpeed; leave it unset")
        if self.args.n_gpu > 1:
            raise ValueError(
                f"{self.args.n_gpu} GPUs in one process (DataParallel) would split queries and passages apart; "
                "launch one process per GPU: torchrun --nproc_per_node N $(which trivec) train contrastive ..."
            )

    # ------------------------------------------------------------------ data
    def get_train_dataloader(self) -> DataLoader:
        """One local batch per item, read in plan order; Accelerate gives rank r every r-th item."""
        dataset = self.train_dataset
        if not isinstance(dataset, ContrastiveDataset):
            return super().get_train_dataloader()
        loader = DataLoader(
            dataset,
            batch_size=1,
            sampler=SequentialSampler(dataset),
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        return self.accelerator.prepare(loader)

    def num_examples(self, dataloader: DataLoader) -> int:
        """Training rows (queries), not batches, so the Trainer's samples/s means queries/s."""
        dataset = getattr(dataloader, "dataset", None)
        if isinstance(dataset, ContrastiveDataset):
            return dataset.num_examples
        return super().num_examples(dataloader)

    # ------------------------------------------------------------------ optimizer
    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with `heads_learning_rate`, the sparse/ColBERT heads form their own
        parameter groups at that rate (the scheduler scales every group alike)."""
        if self.heads_learning_rate is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        self.optimizer = head_rate_optimizer(self, model, self.heads_learning_rate, _is_head)
        return self.optimizer

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> Any:
        outputs = model(**inputs, step=self.state.global_step)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def training_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        model.train()
        inputs = self._prepare_inputs(inputs)
        scale = 1.0 / max(1, getattr(self, "current_gradient_accumulation_steps", 1))
        kwargs: dict[str, Any] = {}
        if self.is_deepspeed_enabled:
            kwargs["scale_wrt_gas"] = False
        rows = inputs["query"]["input_ids"].shape[0] + inputs["passage"]["input_ids"].shape[0]
        if self.sub_batch_size and rows > self.sub_batch_size:
            output = grad_cache_step(
                model,
                inputs,
                self.sub_batch_size,
                backward=lambda loss: self.accelerator.backward(loss, **kwargs),
                no_sync=lambda: self.accelerator.no_sync(model),
                autocast=self.compute_loss_context_manager,
                unwrap=self.accelerator.unwrap_model,
                loss_scale=scale,
                step=self.state.global_step,
            )
        else:
            with self.compute_loss_context_manager():
                output = model(**inputs, step=self.state.global_step)
            assert isinstance(output, ContrastiveOutput)
            self.accelerator.backward(output.loss * output.gradient_scale * scale, **kwargs)
        self.record_loss_parts(output.parts)
        return output.loss.detach() * scale

    # ------------------------------------------------------------------ saving and resuming
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = str(output_dir if output_dir is not None else self.args.output_dir)
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        assert isinstance(model, ContrastiveModel)
        if state_dict is not None:  # e.g. gathered from DeepSpeed ZeRO-3 shards
            model.load_state_dict(state_dict)
        model.encoder.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_FILE))

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        """Weights of a checkpoint in the BAAI layout back into the model being trained."""
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        assert isinstance(target, ContrastiveModel)
        encoder = target.encoder
        if is_lora(encoder.backbone):  # adapters from lora/, heads from their files; base weights unchanged
            load_adapter_weights(encoder.backbone, Path(resume_from_checkpoint) / LORA_DIR)
            for head in (encoder.sparse_head, encoder.colbert_head):
                if head is not None:
                    saved_head = type(head).load(
                        Path(resume_from_checkpoint) / head.file_name, head.in_features
                    )
                    head.load_state_dict(saved_head.state_dict())
            return
        saved = M3Model.from_pretrained(
            resume_from_checkpoint, heads="auto" if encoder.has_sparse else "none", dtype=_dtype_of(encoder)
        )
        missing, unexpected = encoder.load_state_dict(saved.state_dict(), strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{resume_from_checkpoint} does not match the model being trained "
                f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
            )


def _dtype_of(module: torch.nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


class EpochPlanCallback(TrainerCallback):
    """Tell the dataset which epoch starts, so its batch plan is a function of (seed, epoch) only.

    The epoch index is derived from the global step, which the Trainer restores on resume, so a resumed
    run rebuilds the very plan it was interrupted in (Accelerate does not always forward `set_epoch`).
    """

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        loader = kwargs.get("train_dataloader")
        dataset = getattr(loader, "dataset", None)
        if not isinstance(dataset, ContrastiveDataset):
            return
        batches = len(loader) if loader is not None else dataset.num_batches
        steps_per_epoch = max(1, -(-batches // max(1, args.gradient_accumulation_steps)))
        dataset.set_epoch(state.global_step // steps_per_epoch)


def _is_head(name: str) -> bool:
    return ".sparse_head." in f".{name}" or ".colbert_head." in f".{name}"
