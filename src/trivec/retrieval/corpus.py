"""Corpus input: documents from JSONL or a folder of `.txt`/`.md` files, and token-window chunking.

A `Document` is what a user indexes (id, title, text, metadata); a `Chunk` is what an index stores as one
row. Without chunking every document is one chunk whose id is the document id; with chunking a long
document becomes `doc#0`, `doc#1`, … (overlapping token windows) and every chunk keeps its `doc_id`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trivec.errors import InputError
from trivec.io import STDIO, is_stdio, iter_jsonl, read_text_file, with_title
from trivec.textcheck import find_surrogate, json_type

logger = logging.getLogger("trivec.retrieval")

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
CHUNK_SEPARATOR = "#"


@dataclass
class Document:
    """One document: a unique `id`, its `text`, an optional `title` and free-form JSON `metadata`."""

    id: str
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, item: Document | Mapping[str, Any], where: str = "document") -> Document:
        """A `Document` from itself or a mapping with `id`, `text` and optional `title` / `metadata`."""
        if isinstance(item, Document):
            doc = item
        elif isinstance(item, Mapping):
            doc = _from_row(item, where)
        else:
            raise InputError(
                f"{where}: expected a Document or a dict with 'id' and 'text', got {type(item).__name__}"
            )
        if not isinstance(doc.id, str) or not doc.id:
            raise InputError(f"{where}: document id must be a non-empty string, got {doc.id!r}")
        if not isinstance(doc.text, str):
            raise InputError(f"{where}: document {doc.id!r} text must be a string")
        if doc.title is not None and not isinstance(doc.title, str):
            raise InputError(f"{where}: document {doc.id!r} title must be a string")
        if not isinstance(doc.metadata, dict):
            raise InputError(f"{where}: document {doc.id!r} metadata must be a dict")
        found = find_surrogate({"id": doc.id, "text": doc.text, "title": doc.title, "metadata": doc.metadata})
        if found is not None:  # caught here, not half-way through writing an index
            raise InputError(f"{where}: {found[0]} contains {found[1]}")
        return doc


@dataclass
class Chunk:
    """One stored row: a whole document or one token window of it."""

    id: str
    doc_id: str
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    position: int = 0

    @property
    def embed_text(self) -> str:
        """What the model encodes: `"{title} {text}"` (`trivec.io.with_title`)."""
        return with_title(self.title, self.text)


def _from_row(row: Mapping[str, Any], where: str) -> Document:
    if "id" not in row:
        raise InputError(f"{where}: missing field 'id'")
    raw_id = row["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise InputError(f"{where}: field 'id' must be a string or an integer, got {json_type(raw_id)}")
    text = row.get("text")
    if not isinstance(text, str):
        problem = "missing" if "text" not in row else f"{json_type(text)}, not a string"
        raise InputError(f"{where}: field 'text' is {problem}")
    title = row.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(f"{where}: field 'title' must be a string, got {json_type(title)}")
    metadata = row.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InputError(f"{where}: field 'metadata' must be a JSON object, got {json_type(metadata)}")
    extra = {k: v for k, v in row.items() if k not in ("id", "text", "title", "metadata")}
    return Document(id=str(raw_id), text=text, title=title or None, metadata={**extra, **metadata})


def read_corpus(path: str | os.PathLike[str]) -> list[Document]:
    """Documents from a JSONL file (`{"id", "title"?, "text", ...}`; `-`: JSON Lines on stdin) or a folder of
    `.txt` / `.md` files.

    Extra JSONL fields go to `metadata`. A folder is read recursively; a file's id is its path relative to
    the folder. Duplicate ids and an empty corpus are errors (naming file and line).
    """
    if is_stdio(path):
        docs = list(_read_jsonl(STDIO))
        if not docs:
            raise InputError("<stdin>: the corpus has no documents")
        warn_empty(docs, "<stdin>")
        return docs
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file or directory")
    docs = list(_read_dir(source)) if source.is_dir() else list(_read_jsonl(source))
    if not docs:
        raise InputError(f"{source}: the corpus has no documents")
    warn_empty(docs, str(source))
    return docs


def warn_empty(docs: Sequence[Document], source: str) -> None:
    """Warn of documents without text (real corpora have them: Cranfield's 471): they are kept — found by
    id, counted — but an empty passage is the prompt alone, which every query matches a little."""
    empty = [doc.id for doc in docs if not doc.text.strip() and not (doc.title or "").strip()]
    if empty:
        shown = ", ".join(repr(i) for i in empty[:3]) + (", …" if len(empty) > 3 else "")
        logger.warning(
            "%s: %d document(s) without text (%s): indexed under their ids; no word of a query matches them, "
            "but their dense vector (of the prompt alone) is near many queries — leave them out of the corpus "
            "if they should not be found",
            source,
            len(empty),
            shown,
        )


def _read_jsonl(path: Path | str) -> Iterator[Document]:
    stdin = is_stdio(path)
    if not stdin and Path(path).suffix.lower() != ".jsonl":
        raise InputError(f"{path}: a corpus is a .jsonl file or a folder of .txt/.md files")
    name = "<stdin>" if stdin else str(path)
    seen: dict[str, int] = {}
    for number, row in iter_jsonl(path):
        where = f"{name}:{number}"
        doc = Document.coerce(_from_row(row, where), where)
        if doc.id in seen:
            raise InputError(f"{where}: duplicate document id {doc.id!r} (first on line {seen[doc.id]})")
        seen[doc.id] = number
        yield doc


def _read_dir(folder: Path) -> Iterator[Document]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    for file in files:
        text = read_text_file(file)
        relative = file.relative_to(folder).as_posix()
        yield Document(id=relative, text=text, title=None, metadata={"path": relative})


def coerce_documents(documents: Sequence[Document | Mapping[str, Any]]) -> list[Document]:
    """`documents` as checked `Document`s (`Document.coerce`, named by position), no id twice."""
    docs = [Document.coerce(d, f"document {i}") for i, d in enumerate(documents)]
    check_unique(docs)
    return docs


def check_unique(docs: Sequence[Document]) -> None:
    """Refuse duplicate ids within one batch of documents."""
    seen: set[str] = set()
    for position, doc in enumerate(docs):
        if doc.id in seen:
            raise InputError(f"document {position}: duplicate id {doc.id!r} in the same batch")
        seen.add(doc.id)


def chunk_documents(
    docs: Iterable[Document],
    tokenizer: Any = None,
    chunk_tokens: int | None = None,
    overlap: int = 0,
) -> list[Chunk]:
    """Split documents into overlapping windows of `chunk_tokens` tokens (no chunking when it is None).

    Windows are cut at token boundaries of the model's own tokenizer (special tokens not counted), so each
    chunk fits the model as asked; a document that fits in one window stays one chunk with the document id.
    Where a cut falls inside a word, it moves to the word's edge by up to half the overlap (`word_aligned`),
    so a chunk — what a search shows and a RAG prompt gets — starts and ends on whole words while the
    windows still cover the text.
    """
    out: list[Chunk] = []
    if chunk_tokens is None:
        for doc in docs:
            out.append(Chunk(doc.id, doc.id, doc.text, doc.title, doc.metadata, 0))
        return out
    if chunk_tokens < 1:
        raise InputError(f"chunk_tokens must be ≥ 1, got {chunk_tokens}")
    if not 0 <= overlap < chunk_tokens:
        raise InputError(f"chunk overlap must be ≥ 0 and < chunk_tokens ({chunk_tokens}), got {overlap}")
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise InputError("chunking needs the model's fast tokenizer (character offsets)")
    items = list(docs)
    if not items:
        return out
    encoded = tokenizer(
        [d.text for d in items],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    stride = chunk_tokens - overlap
    for doc, offsets in zip(items, encoded["offset_mapping"], strict=True):
        windows = _windows(len(offsets), chunk_tokens, stride)
        if len(windows) > 1:
            starts_word = [b == 0 or doc.text[b - 1].isspace() for b, _ in offsets]
            windows = word_aligned(windows, starts_word, overlap // 2)
        if len(windows) <= 1:
            out.append(Chunk(doc.id, doc.id, doc.text, doc.title, doc.metadata, 0))
            continue
        for n, (start, end) in enumerate(windows):
            begin, finish = offsets[start][0], offsets[end - 1][1]
            out.append(
                Chunk(
                    f"{doc.id}{CHUNK_SEPARATOR}{n}",
                    doc.id,
                    doc.text[begin:finish],
                    doc.title,
                    doc.metadata,
                    n,
                )
            )
    return out


def word_aligned(
    windows: list[tuple[int, int]], starts_word: Sequence[bool], limit: int
) -> list[tuple[int, int]]:
    """`windows` (token ranges, end exclusive) with each inner cut moved to a word boundary — a start forward
    to the next token that begins a word, an end back to just before one — by at most `limit` tokens each (a
    cut with no boundary that near stays). With `limit` ≤ half the windows' overlap, consecutive windows still
    meet: the text stays covered."""
    last = len(starts_word)
    out = []
    for k, (start, end) in enumerate(windows):
        if k > 0:
            start = next((s for s in range(start, min(start + limit, end - 1) + 1) if starts_word[s]), start)
        if end < last:
            end = next((e for e in range(end, max(end - limit, start + 1) - 1, -1) if starts_word[e]), end)
        out.append((start, end))
    return out


def _windows(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    if length <= size:
        return [(0, length)]
    starts = [*range(0, length - size, stride), length - size]
    windows: list[tuple[int, int]] = []
    for start in starts:
        if windows and start <= windows[-1][0]:
            continue
        windows.append((start, start + size))
    return windows
