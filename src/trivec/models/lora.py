"""LoRA adapters on a backbone (the `peft` library): train few weights, ship fewer, save a plain model.

A backbone wrapped here trains only its adapters. Saving writes the backbone with the adapters merged into a
copy (a standard Hugging Face checkpoint every tool loads) and the adapters alone in `lora/`, small enough
to ship inside a package and re-apply to the same base weights (`merge_adapter`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import PreTrainedModel

from trivec.errors import CheckpointError

LORA_DIR = "lora"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft asks transformers a deprecated question (`is_gradient_checkpointing`) when it wraps a model:
    a FutureWarning about peft's own code, nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        yield


def is_lora(module: torch.nn.Module) -> bool:
    """True for a backbone wrapped with LoRA adapters."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(module, PeftModel)


def add_lora(
    backbone: PreTrainedModel,
    rank: int,
    alpha: float | None = None,
    dropout: float = 0.0,
    target_modules: Sequence[str] = ("query", "key", "value", "dense"),
) -> torch.nn.Module:
    """Wrap `backbone` with new LoRA adapters (B = 0, so outputs are unchanged until training); only the
    adapters require gradients."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,  # type: ignore[arg-type]  # peft accepts floats
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
    )
    try:
        with quiet_peft():
            return get_peft_model(backbone, config)
    except ValueError as exc:
        raise CheckpointError(f"cannot add LoRA adapters to {target_modules}: {exc}") from exc


def trainable_adapters_only(backbone: torch.nn.Module) -> None:
    """Make the adapters the only trainable weights of a LoRA backbone."""
    for name, parameter in backbone.named_parameters():
        parameter.requires_grad_("lora_" in name)


def merged_copy(backbone: torch.nn.Module) -> PreTrainedModel:
    """The backbone to save: a LoRA backbone's adapters merged into a copy (the live model is untouched);
    any other backbone as it is."""
    if not is_lora(backbone):
        return backbone  # type: ignore[return-value]
    return copy.deepcopy(backbone).merge_and_unload()  # type: ignore[operator]


def merge_adapter(backbone: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """Apply saved adapters (`lora/` of a trained model) to their base weights and merge them in."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise CheckpointError(f"{adapter_dir} has no adapter_config.json: not a LoRA adapter folder")
    try:
        with quiet_peft():
            return PeftModel.from_pretrained(backbone, str(adapter_dir)).merge_and_unload()
    except Exception as exc:
        raise CheckpointError(f"cannot apply the LoRA adapters of {adapter_dir}: {exc}") from exc


def load_adapter_weights(backbone: torch.nn.Module, adapter_dir: Path) -> None:
    """Load saved adapter weights into a LoRA backbone being trained (resuming a run)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = adapter_dir / ADAPTER_WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint has no LoRA adapters to resume from")
    result = set_peft_model_state_dict(backbone, load_file(str(path)))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected:
        raise CheckpointError(f"{path} does not match the adapters being trained ({unexpected[:3]})")
