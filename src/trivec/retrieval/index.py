"""`Index`: where indexes come from — create, build or open one of any backend by path.

The backends implement `BaseIndex` (`base.py`) and know nothing of each other; this module picks one
(`backend="embedded"`: a directory; `"qdrant"`: a Qdrant collection) and is the only one that imports them
all. Every index it returns is an `Index` (`isinstance` holds: the backends are registered with it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from trivec.errors import InputError
from trivec.inference.encoder import Embedder
from trivec.inference.loading import load_embedder
from trivec.io import staged_directory
from trivec.models.prompts import ROLES
from trivec.retrieval.base import BaseIndex
from trivec.retrieval.corpus import Document
from trivec.retrieval.embedded import EmbeddedIndex, check_target
from trivec.retrieval.manifest import locked_for_replacing
from trivec.retrieval.qdrant import CONFIG as QDRANT_CONFIG
from trivec.retrieval.qdrant import QdrantIndex
from trivec.retrieval.settings import QDRANT_SETTINGS, IndexSettings, check_for_model

BACKENDS: tuple[str, ...] = ("embedded", "qdrant")


class Index(BaseIndex):
    """A searchable, persistent collection of documents encoded by one model.

    Index.create(path, model="default") / Index.open(path) give the embedded backend (a directory);
    `backend="qdrant"` (with `url=` for a server or cluster) gives the Qdrant one. The type of every index
    (the backends are registered as its subclasses); not itself instantiated.
    """

    @staticmethod
    def create(
        path: str | os.PathLike[str],
        model: str | os.PathLike[str] | Embedder = "default",
        *,
        backend: str = "embedded",
        settings: IndexSettings | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> Index:
        """A new, empty index at `path` for `model`. `options` are `IndexSettings` fields or backend options
        (qdrant: `url`, `collection`, `api_key`). The query and document prompts (the model's, or
        `prompts={"query": ..., "document": ...}`) are recorded with the index and used by every add and
        search. Settings and the target are checked before the model loads."""
        merged, rest = _merged_settings(backend, settings, options)
        if backend == "embedded":
            check_target(Path(path), overwrite)
        embedder = load_embedder(model)
        check_for_model(merged, embedder)
        given = merged.prompts or {}
        merged.prompts = {role: embedder.resolve_prompt(role, given.get(role)) for role in ROLES}
        if backend == "embedded":
            return cast(Index, EmbeddedIndex.new(Path(path), embedder, merged, overwrite=overwrite))
        return cast(Index, QdrantIndex.new(Path(path), embedder, merged, overwrite=overwrite, **rest))

    @staticmethod
    def build(
        path: str | os.PathLike[str],
        documents: Sequence[Document | Mapping[str, Any]],
        model: str | os.PathLike[str] | Embedder = "default",
        *,
        backend: str = "embedded",
        settings: IndexSettings | None = None,
        overwrite: bool = False,
        progress: bool = False,
        **options: Any,
    ) -> Index:
        """`create` + `add` of `documents` as one step that leaves nothing half-built: the embedded index is
        built in a directory beside `path` and renamed into place only when complete, so a failure (bad
        documents, an interrupted encode, a full disk) leaves no directory behind, and with `overwrite` the
        index it replaces stays as it was until then. (A Qdrant index's local directory is removed on
        failure when this call created it.) Returns the new index, open."""
        target = Path(path)
        merged, rest = _merged_settings(backend, settings, options)
        if not documents:
            raise InputError("no documents to add")
        if backend == "embedded":
            return cast(Index, _build_embedded(target, documents, model, merged, overwrite, progress))
        existed = target.exists()
        index = Index.create(target, model, backend=backend, settings=merged, overwrite=overwrite, **rest)
        try:
            index.progress = progress
            index.add(documents)
        except BaseException:
            index.close()
            if not existed:
                shutil.rmtree(target, ignore_errors=True)
            raise
        return index

    @staticmethod
    def check_build(
        path: str | os.PathLike[str], *, backend: str = "embedded", overwrite: bool = False, **options: Any
    ) -> None:
        """The checks `build` makes before it encodes anything (backend, settings, where the index goes), for
        callers that load the model first: a bad option fails before the model is read."""
        _merged_settings(backend, None, options)
        if backend == "embedded":
            check_target(Path(path), overwrite)

    @staticmethod
    def open(
        path: str | os.PathLike[str],
        model: str | os.PathLike[str] | Embedder | None = None,
        **options: Any,
    ) -> Index:
        """Open an existing index (embedded or Qdrant, told apart by its files). `model` defaults to the
        one recorded in the index and is loaded on first need; a different model is refused."""
        directory = Path(path)
        if (directory / QDRANT_CONFIG).is_file():
            return cast(Index, QdrantIndex.load(directory, model, **options))
        return cast(Index, EmbeddedIndex.load(directory, model, **options))


Index.register(EmbeddedIndex)
Index.register(QdrantIndex)


def _merged_settings(
    backend: str, settings: IndexSettings | None, options: Mapping[str, Any]
) -> tuple[IndexSettings, dict[str, Any]]:
    """The settings `options` give over `settings`, validated, and the backend options left over."""
    if backend not in BACKENDS:
        raise InputError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}",
            cli=f"--backend must be {' or '.join(BACKENDS)}, got {backend}",
        )
    known = {k: v for k, v in options.items() if k in IndexSettings.__dataclass_fields__}
    rest = {k: v for k, v in options.items() if k not in known}
    if backend == "embedded" and rest:
        raise InputError(f"unknown index option(s) {', '.join(sorted(rest))}")
    merged = IndexSettings(**{**(settings.to_dict() if settings else {}), **known}).validate()
    qdrant_only = [name for name in QDRANT_SETTINGS if getattr(merged, name) is not None]
    if backend == "embedded" and qdrant_only:
        raise InputError(
            f"{qdrant_only[0]} applies to the Qdrant backend",
            cli=f"--{qdrant_only[0].replace('_', '-')} applies to --backend qdrant",
        )
    return merged, rest


def _build_embedded(
    target: Path,
    documents: Sequence[Any],
    model: str | os.PathLike[str] | Embedder,
    settings: IndexSettings,
    overwrite: bool,
    progress: bool,
) -> EmbeddedIndex:
    """`Index.build` for the embedded backend: build in `.<name>.building-<id>` beside `target`, then rename
    it into place (an index it replaces is renamed aside first and removed once the new one is in place)."""
    check_target(target, overwrite)
    with contextlib.ExitStack() as held:

        def recheck() -> None:
            # checked again before the rename: the directory may have changed while the corpus encoded; an
            # index there stays locked until it is renamed aside (a writer's commit lands before, not after)
            check_target(target, overwrite)
            held.enter_context(locked_for_replacing(target))

        with staged_directory(target, "building", recheck) as staging:
            index = Index.create(staging, model, settings=settings)
            with index:
                index.progress = progress
                index.add(documents)
            embedder = index.embedder
    return EmbeddedIndex.load(target, embedder)
