"""Which device a model runs on: the default (CUDA when there is one), or a device the caller names, checked
once (`resolve_device`) — an unknown name or a device this machine lacks is a one-line error before the
model loads, not torch's assertion from inside the first transfer."""

from __future__ import annotations

import torch

from trivec.errors import InputError

KINDS = "cpu, cuda, cuda:N or mps"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch device (None: `default_device()`), when this machine has it."""
    if device is None:
        return default_device()
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {str(device)!r} ({KINDS})") from exc
    if target.type == "cuda":
        count = torch.cuda.device_count()
        if (target.index or 0) >= count:
            raise InputError(f"device {str(device)!r} is not available ({count} CUDA device(s) here)")
    elif target.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"device {str(device)!r} is not available (no MPS device here)")
    elif target.type != "cpu":
        raise InputError(f"device {str(device)!r}: trivec runs on {KINDS}")
    return target
