"""The encoder runtime's choices — backend and precision names — and their one check each, in a module that
does not import torch: the server's settings and the commands' options are checked before anything loads,
with the same words as the Python API."""

from __future__ import annotations

from typing import Literal

from trivec.errors import InputError

Backend = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")
AUTO = "auto"
DTYPE_NAMES: tuple[str, ...] = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")
DTYPE_CHOICES = "auto, float32, bfloat16 or float16"


def check_backend(backend: object, onnx_file: object = None, option: str = "--backend") -> Backend:
    """`backend` when it is `torch` or `onnx`, and an ONNX file is named only with `onnx`; else a one-line
    error (on the command line naming `option`, the flag that chooses the backend)."""
    if backend not in BACKENDS:
        choices = ", ".join(BACKENDS)
        raise InputError(
            f"backend must be one of {choices}, got {backend!r}",
            cli=f"{option} must be one of {choices}, got {backend!r}",
        )
    if onnx_file is not None and backend != "onnx":
        raise InputError("onnx_file applies to backend='onnx'", cli=f"--onnx-file applies to {option} onnx")
    return backend  # type: ignore[return-value]


def check_dtype_name(dtype: object) -> None:
    """A precision given by name: None, `auto` or one of `DTYPE_NAMES`; else a one-line error."""
    if dtype is None or dtype == AUTO or dtype in DTYPE_NAMES:
        return
    raise InputError(
        f"dtype must be {DTYPE_CHOICES}, got {dtype!r}", cli=f"--dtype must be {DTYPE_CHOICES}, got {dtype!r}"
    )
