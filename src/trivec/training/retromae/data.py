"""Plain-text corpora for pre-training: `.jsonl` rows (`text`, optional `title`) or `.txt` lines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from trivec.errors import InputError
from trivec.io import iter_jsonl, read_texts


def read_corpus_texts(path: str | os.PathLike[str]) -> list[str]:
    """Texts of one corpus file, empty ones dropped.

    `.jsonl`: `{"text": str}` per line as in FlagEmbedding's pre-training data, or a retrieval corpus row
    `{"id", "title"?, "text"}` — title and text are joined with a space. `.txt`: one text per line.
    """
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        return [t.strip() for t in read_texts(path) if t.strip()]
    texts: list[str] = []
    for number, row in iter_jsonl(path):
        parts = []
        for key in ("title", "text"):
            value = row.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise InputError(f"{path}:{number}: field {key!r} is a {type(value).__name__}, not a string")
            parts.append(value.strip())
        if "text" not in row and "title" not in row:
            raise InputError(f"{path}:{number}: no 'text' field (pre-training rows are {{\"text\": str}})")
        text = " ".join(p for p in parts if p)
        if text:
            texts.append(text)
    return texts


class TextCorpus(Dataset):
    """All texts of one or more corpus files, in file order."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        if not paths:
            raise InputError("no corpus file given")
        self.texts: list[str] = []
        self.sizes: dict[str, int] = {}
        for path in paths:
            texts = read_corpus_texts(path)
            if not texts:
                raise InputError(f"{path}: no non-empty texts")
            self.sizes[str(path)] = len(texts)
            self.texts.extend(texts)

    def files(self) -> list[tuple[str, list[str]]]:
        """Each corpus file with its texts, in file order (what the token cache tokenises per file)."""
        out, start = [], 0
        for path, size in self.sizes.items():
            out.append((path, self.texts[start : start + size]))
            start += size
        return out

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> str:
        return self.texts[index]
