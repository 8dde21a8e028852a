"""The runtime choices are checked once, in a module that does not import torch, and name the same dtypes
as the torch table that resolves them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trivec.errors import InputError
from trivec.inference.choices import DTYPE_NAMES, check_backend, check_dtype_name
from trivec.inference.precision import NAMES


def test_every_dtype_name_resolves_to_a_torch_dtype() -> None:
    assert set(NAMES) == set(DTYPE_NAMES)


def test_checks_name_the_flag_on_the_command_line() -> None:
    with pytest.raises(InputError) as bad:
        check_backend("tensorrt", option="--model-backend")
    assert str(bad.value) == "backend must be one of torch, onnx, got 'tensorrt'"
    assert bad.value.for_cli() == "--model-backend must be one of torch, onnx, got 'tensorrt'"
    with pytest.raises(InputError) as stray:
        check_backend("torch", "model_int8.onnx")
    assert stray.value.for_cli() == "--onnx-file applies to --backend onnx"
    assert check_backend("onnx", "model_int8.onnx") == "onnx"
    with pytest.raises(InputError, match="dtype must be auto, float32, bfloat16 or float16, got 'int4'"):
        check_dtype_name("int4")
    check_dtype_name(None)
    check_dtype_name("auto")


def test_the_module_does_not_import_torch() -> None:
    code = "import sys, trivec.inference.choices, trivec.serving.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
