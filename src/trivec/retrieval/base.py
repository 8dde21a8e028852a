"""The index interface every backend implements, and what they share: settings, hits, encoding, mode plans.

An index stores chunks of documents with the three representations of one model and answers searches:
dense top-k ∪ sparse top-k → exact per-mode scores of the candidates (ColBERT MaxSim re-ranks them) →
weighted fusion (default weights 0.4 / 0.2 / 0.4) or RRF. The embedded backend keeps everything in a
directory; the Qdrant backend in a Qdrant collection. Both take the same calls.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trivec.errors import InputError, UnsupportedOutputError
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.scoring import DEFAULT_WEIGHTS, MODES, normalize_weights
from trivec.models.prompts import DOCUMENT, QUERY, ROLES, check_prompts
from trivec.retrieval.corpus import Chunk, Document, check_unique, chunk_documents
from trivec.retrieval.fusion import FUSIONS
from trivec.retrieval.identity import ModelIdentity, check_same, identify
from trivec.retrieval.rerank import load_reranker, rerank_depth, rerank_hits

SEARCH_MODES: tuple[str, ...] = ("dense", "sparse", "colbert", "hybrid")
BACKENDS: tuple[str, ...] = ("embedded", "qdrant")
if TYPE_CHECKING:
    from trivec.inference.reranker import Reranker

ENCODE_BATCH = 1024


@dataclass
class IndexSettings:
    """How an index stores its data; fixed when it is created (recorded with it).

    prompts: `{"query": ..., "document": ...}`, the texts put before queries and documents ("" for none).
    Given roles are used as they are; `Index.create` fills the others from the model's prompts. None in an
    index built before prompts were recorded: the model's prompts apply.
    """

    chunk_tokens: int | None = None
    chunk_overlap: int = 0
    max_length: int | None = None
    sparse: bool = True
    colbert: bool = True
    colbert_dtype: str = "float16"
    colbert_dim: int | None = None
    dense_index: str = "auto"
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 320
    hnsw_storage: str = "float16"
    ivf_nprobe: int = 32
    max_segments: int = 8
    prompts: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def validate(self) -> IndexSettings:
        """Raise `InputError` naming the first setting out of range (as the option `trivec index build`
        takes for it, on the command line); returns the settings."""
        choices = {
            "dense_index": ("auto", "flat", "hnsw", "ivf"),
            "hnsw_storage": ("float16", "float32"),
            "colbert_dtype": ("float16", "float32", "int8"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                _setting_error(
                    name, f"must be {', '.join(allowed[:-1])} or {allowed[-1]}", getattr(self, name)
                )
        positive = ("ann_threshold", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe")
        for name in (*positive, "max_segments"):
            _check_int(name, getattr(self, name), 1)
        for name, minimum in (("chunk_tokens", 1), ("colbert_dim", 1), ("max_length", 2)):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum)
        _check_int("chunk_overlap", self.chunk_overlap, 0)
        if self.chunk_tokens is None and self.chunk_overlap:
            raise InputError(
                "chunk_overlap applies to chunking: give chunk_tokens too",
                cli="--chunk-overlap applies to chunking: give --chunk-tokens too",
            )
        if self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens:
            raise InputError(
                f"chunk_overlap must be less than chunk_tokens ({self.chunk_tokens}), got {self.chunk_overlap}",
                cli=f"--chunk-overlap must be less than --chunk-tokens ({self.chunk_tokens}), got "
                f"{self.chunk_overlap}",
            )
        for name in ("sparse", "colbert"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.prompts is not None:
            check_prompts(self.prompts, "index prompts")
            unknown = set(self.prompts) - set(ROLES)
            if unknown:
                raise InputError(
                    f"index prompts are given per role ({', '.join(ROLES)}), not {', '.join(sorted(unknown))}"
                )
        return self


def _setting_error(name: str, problem: str, value: Any) -> None:
    raise InputError(
        f"{name} {problem}, got {value!r}", cli=f"--{name.replace('_', '-')} {problem}, got {value}"
    )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _setting_error(
            name, "must be a positive integer" if minimum == 1 else f"must be an integer ≥ {minimum}", value
        )


@dataclass
class Hit:
    """One search result: the chunk, its document, the fused score and every computed per-mode score."""

    id: str
    doc_id: str
    score: float
    scores: dict[str, float]
    text: str
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchPlan:
    """What one search computes: its mode, the score modes, their weights and the candidate depth."""

    mode: str
    score_modes: list[str]
    weights: dict[str, float]
    fusion: str
    top_k: int
    candidates: int

    @property
    def first_stage(self) -> list[str]:
        """Lists whose top `candidates` form the candidate set."""
        if self.mode == "dense":
            return ["dense"]
        if self.mode == "sparse":
            return ["sparse"]
        if self.mode == "colbert":
            return ["dense"]
        return [m for m in ("dense", "sparse") if m in self.score_modes]

    @property
    def needs(self) -> tuple[bool, bool, bool]:
        """(dense, sparse, colbert) query outputs needed."""
        wanted = set(self.score_modes) | set(self.first_stage)
        return "dense" in wanted, "sparse" in wanted, "colbert" in wanted


def plan_search(
    mode: str,
    available: Sequence[str],
    weights: Mapping[str, float] | Sequence[float] | None,
    fusion: str,
    top_k: int,
    candidates: int | None,
) -> SearchPlan:
    """Check a search request against what the index holds; modes it lacks are skipped (hybrid) or refused."""
    if mode not in SEARCH_MODES:
        raise InputError(f"unknown search mode {mode!r}; expected one of {', '.join(SEARCH_MODES)}")
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise InputError(
            f"top_k must be a positive integer, got {top_k!r}",
            cli=f"--top-k must be a positive integer, got {top_k}",
        )
    if candidates is not None and (
        not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1
    ):
        raise InputError(
            f"candidates must be a positive integer, got {candidates!r}",
            cli=f"--candidates must be a positive integer, got {candidates}",
        )
    depth = max(top_k, candidates if candidates is not None else 100)
    try:
        w = normalize_weights(weights) if weights is not None else dict(DEFAULT_WEIGHTS)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if mode in ("sparse", "colbert") and mode not in available:
        raise UnsupportedOutputError(
            f"this index has no {mode} vectors (the model has no {mode} head, or they were not stored); "
            f"available modes: {', '.join(available)}"
        )
    if mode == "hybrid":
        score_modes = [m for m in MODES if m in available and w.get(m, 0.0) > 0]
        if not score_modes:
            raise InputError(f"every weight of the index's modes ({', '.join(available)}) is 0")
    elif mode == "colbert":
        score_modes = ["colbert"]
        w = {"dense": 0.0, "sparse": 0.0, "colbert": 1.0}
    else:
        score_modes = [mode]
    return SearchPlan(mode, score_modes, w, fusion, top_k, depth)


def encode_chunks(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    sparse: bool,
    colbert: bool,
    max_length: int | None,
    progress: bool = False,
    prompt: str | None = None,
) -> Iterator[tuple[list[Chunk], EncodeResult]]:
    """Encode chunks in batches as documents (`prompt`, else the model's `document` prompt, before each;
    unit-length dense vectors: cosine even for models that do not normalise). `progress`: a bar on a
    terminal, a log line every 10 s otherwise (`trivec.progress`)."""
    from trivec.progress import Progress

    bar = Progress(len(chunks), "encode", "chunks", enabled=progress)
    for start in range(0, len(chunks), ENCODE_BATCH):
        batch = list(chunks[start : start + ENCODE_BATCH])
        result = embedder.encode(
            [c.embed_text for c in batch],
            dense=True,
            sparse=sparse,
            colbert=colbert,
            prompt_name=DOCUMENT,
            prompt=prompt,
            max_length=max_length,
            show_progress=False,
        )
        result.dense = unit(result.dense, embedder)
        bar.update(len(batch))
        yield batch, result
    bar.close()


def unit(vectors: np.ndarray | None, embedder: Embedder) -> np.ndarray | None:
    """Dense vectors for cosine scoring; models that normalise are used as they are (as evaluation does)."""
    if vectors is None or embedder.model.normalize:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class Index(ABC):
    """A searchable, persistent collection of documents encoded by one model.

    Index.create(path, model="default") / Index.open(path) give the embedded backend (a directory);
    `backend="qdrant"` (with `url=` for a server or cluster) gives the Qdrant one.
    """

    identity: ModelIdentity
    settings: IndexSettings
    location: str

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder

    # ------------------------------------------------------------------ construction
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
            from trivec.retrieval.embedded import check_target

            check_target(Path(path), overwrite)
        embedder = load_model(model)
        _check_for_model(merged, embedder)
        given = merged.prompts or {}
        merged.prompts = {role: embedder.resolve_prompt(role, given.get(role)) for role in ROLES}
        if backend == "embedded":
            from trivec.retrieval.embedded import EmbeddedIndex

            return EmbeddedIndex.new(Path(path), embedder, merged, overwrite=overwrite)
        from trivec.retrieval.qdrant import QdrantIndex

        return QdrantIndex.new(Path(path), embedder, merged, overwrite=overwrite, **rest)

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
            from trivec.retrieval.embedded import build_embedded

            return build_embedded(target, documents, model, merged, overwrite, progress)
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
    def open(
        path: str | os.PathLike[str],
        model: str | os.PathLike[str] | Embedder | None = None,
        **options: Any,
    ) -> Index:
        """Open an existing index (embedded or Qdrant, told apart by its files). `model` defaults to the
        one recorded in the index and is loaded on first need; a different model is refused."""
        directory = Path(path)
        if (directory / "qdrant.json").is_file():
            from trivec.retrieval.qdrant import QdrantIndex

            return QdrantIndex.load(directory, model, **options)
        from trivec.retrieval.embedded import EmbeddedIndex

        return EmbeddedIndex.load(directory, model, **options)

    # ------------------------------------------------------------------ model
    @property
    def embedder(self) -> Embedder:
        """The index's model (loaded from the recorded name on first use)."""
        if self._embedder is None:
            if not self.identity.name:
                raise InputError(f"{self.location}: the index does not record a model name; pass model=...")
            embedder = load_model(self.identity.name)
            check_same(self.identity, identify(embedder), self.location)
            self._embedder = embedder
        return self._embedder

    def _adopt_model(self, model: str | os.PathLike[str] | Embedder | None) -> None:
        if model is None:
            return
        embedder = load_model(model)
        check_same(self.identity, identify(embedder), self.location)
        self._embedder = embedder

    def prompt(self, role: str, override: str | None = None) -> str:
        """The text put before texts of `role` (`query` or `document`): `override` when given, else the one
        recorded when the index was created (an index that records none: the model's)."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if override is not None:
            return override
        if self.settings.prompts is not None:
            return self.settings.prompts.get(role, "")
        return self.embedder.resolve_prompt(role)

    @property
    def modes(self) -> list[str]:
        """Score modes this index can run (those whose vectors it stores)."""
        out = ["dense"]
        if self.identity.has_sparse and self.settings.sparse:
            out.append("sparse")
        if self.identity.has_colbert and self.settings.colbert:
            out.append("colbert")
        return out

    # ------------------------------------------------------------------ writing
    def _chunks(self, documents: Sequence[Document | Mapping[str, Any]]) -> list[Chunk]:
        docs = [Document.coerce(d, f"document {i}") for i, d in enumerate(documents)]
        check_unique(docs)
        tokenizer = self.embedder.tokenizer if self.settings.chunk_tokens else None
        return chunk_documents(docs, tokenizer, self.settings.chunk_tokens, self.settings.chunk_overlap)

    progress: bool = False

    def _encoded(self, chunks: Sequence[Chunk]) -> Iterator[tuple[list[Chunk], EncodeResult]]:
        return encode_chunks(
            self.embedder,
            chunks,
            "sparse" in self.modes,
            "colbert" in self.modes,
            self.settings.max_length,
            progress=self.progress,
            prompt=self.prompt(DOCUMENT),
        )

    def add(self, documents: Sequence[Document | Mapping[str, Any]]) -> int:
        """Add new documents (ids must be new); returns the number of chunks stored."""
        if not documents:
            raise InputError("no documents to add")
        chunks = self._chunks(documents)
        return self._add_chunks(chunks, None)

    def add_encoded(self, documents: Sequence[Document | Mapping[str, Any]], encoded: EncodeResult) -> int:
        """Add documents whose vectors were computed already (one row per document, no chunking): `encoded`
        must come from this index's model (`Embedder.encode(passages, prompt=index.prompt("document"))`)."""
        docs = [Document.coerce(d, f"document {i}") for i, d in enumerate(documents)]
        if not docs:
            raise InputError("no documents to add")
        check_unique(docs)
        chunks = chunk_documents(docs)
        self._check_encoded(encoded, len(chunks), queries=False)
        return self._add_chunks(chunks, [(chunks, encoded)])

    def add_encoded_batches(
        self, batches: Iterable[tuple[Sequence[Document | Mapping[str, Any]], EncodeResult]]
    ) -> int:
        """`add_encoded` for a stream of batches, stored as one commit (one segment in the embedded index)
        without holding every vector in memory; duplicate ids across batches are refused."""
        seen: set[str] = set()

        def checked() -> Iterator[tuple[list[Chunk], EncodeResult]]:
            for documents, encoded in batches:
                docs = [Document.coerce(d, f"document {i}") for i, d in enumerate(documents)]
                check_unique(docs)
                again = [d.id for d in docs if d.id in seen]
                if again:
                    raise InputError(f"document id {again[0]!r} appears in two batches")
                seen.update(d.id for d in docs)
                chunks = chunk_documents(docs)
                self._check_encoded(encoded, len(chunks), queries=False)
                yield chunks, encoded

        return self._add_chunks([], checked())

    def _check_encoded(self, encoded: EncodeResult, n: int, queries: bool) -> None:
        """Shapes of pre-computed vectors against the index's model."""
        what = "queries" if queries else "documents"
        ident = self.identity
        if encoded.dense is not None:
            if encoded.dense.shape != (n, ident.dense_dim):
                raise InputError(
                    f"dense vectors of the {what} have shape {tuple(encoded.dense.shape)}, expected ({n}, {ident.dense_dim})"
                )
        elif not queries:
            raise InputError("documents need dense vectors")
        for name in ("sparse", "colbert"):
            value = getattr(encoded, name)
            if value is None:
                if not queries and name in self.modes:
                    raise InputError(f"this index stores {name} vectors; the {what} have none")
                continue
            if len(value) != n:
                raise InputError(f"{len(value)} {name} vectors for {n} {what}")
        if encoded.colbert is not None:
            for rows in encoded.colbert:
                if rows.ndim != 2 or rows.shape[1] != ident.colbert_dim:
                    raise InputError(
                        f"ColBERT vectors of the {what} must be [tokens, {ident.colbert_dim}], got {tuple(rows.shape)}"
                    )

    def update(self, documents: Sequence[Document | Mapping[str, Any]], upsert: bool = False) -> int:
        """Replace documents by id (all their chunks); unknown ids are an error unless `upsert`."""
        if not documents:
            raise InputError("no documents to update")
        chunks = self._chunks(documents)
        ids = list(dict.fromkeys(c.doc_id for c in chunks))
        return self._replace(ids, chunks, upsert)

    def search(
        self,
        queries: str | Sequence[str],
        top_k: int = 10,
        *,
        mode: str = "hybrid",
        weights: Mapping[str, float] | Sequence[float] | None = None,
        fusion: str = "weighted",
        candidates: int | None = None,
        prompt: str | None = None,
        max_length: int | None = None,
        rerank: str | os.PathLike[str] | Reranker | None = None,
        rerank_depth: int | None = None,
    ) -> list[Hit] | list[list[Hit]]:
        """Search with query texts (the index's query prompt before each, or `prompt`; truncated like the
        documents unless `max_length` says otherwise); a list of hits per query (one list for a single
        string). `rerank`: a cross-encoder (`Reranker`, directory or hub id) that re-scores each query's top
        `rerank_depth` hits (default max(100, top_k)) before the best `top_k` are returned
        (`trivec.retrieval.rerank`)."""
        single = isinstance(queries, str)
        texts = [queries] if isinstance(queries, str) else list(queries)
        reranker, depth = self._reranker(rerank, rerank_depth, top_k)
        if not texts:
            return []
        plan = plan_search(mode, self.modes, weights, fusion, depth, candidates)
        dense, sparse, colbert = plan.needs
        encoded = self.embedder.encode(
            texts,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            prompt_name=QUERY,
            prompt=self.prompt(QUERY, prompt),
            max_length=max_length if max_length is not None else self.settings.max_length,
            show_progress=False,
        )
        encoded.dense = unit(encoded.dense, self.embedder)
        results = self.search_encoded(encoded, plan)
        if reranker is not None:
            results = rerank_hits(reranker, texts, results, top_k)
        return results[0] if single else results

    def _reranker(
        self, rerank: str | os.PathLike[str] | Reranker | None, depth: int | None, top_k: int
    ) -> tuple[Reranker | None, int]:
        """The reranker (loaded once per name and kept) and the first stage's depth."""
        if rerank is None:
            if depth is not None:
                raise InputError(
                    "rerank_depth applies with rerank", cli="--rerank-depth applies with --rerank"
                )
            return None, top_k
        depth = rerank_depth(depth, top_k)
        if not isinstance(rerank, (str, os.PathLike)):
            return rerank, depth
        cache: dict[str, Reranker] = self.__dict__.setdefault("_rerankers", {})
        key = os.fspath(rerank)
        if key not in cache:
            cache[key] = load_reranker(rerank, device=str(self.embedder.device))
        return cache[key], depth

    def search_vectors(
        self,
        encoded: EncodeResult,
        top_k: int = 10,
        *,
        mode: str = "hybrid",
        weights: Mapping[str, float] | Sequence[float] | None = None,
        fusion: str = "weighted",
        candidates: int | None = None,
    ) -> list[list[Hit]]:
        """Search with already-encoded queries (`Embedder.encode(queries, prompt=index.prompt("query"))` of
        this index's model)."""
        plan = plan_search(mode, self.modes, weights, fusion, top_k, candidates)
        n = (
            encoded.dense.shape[0]
            if encoded.dense is not None
            else len(encoded.sparse or encoded.colbert or [])
        )
        self._check_encoded(encoded, n, queries=True)
        return self.search_encoded(encoded, plan)

    # ------------------------------------------------------------------ backend
    @abstractmethod
    def _add_chunks(
        self, chunks: Sequence[Chunk], batches: Iterable[tuple[list[Chunk], EncodeResult]] | None
    ) -> int:
        """Store new chunks (their documents must not be in the index); `batches` = pre-encoded rows."""

    @abstractmethod
    def _replace(self, doc_ids: Sequence[str], chunks: Sequence[Chunk], upsert: bool) -> int: ...

    @abstractmethod
    def delete(self, ids: Sequence[str], missing_ok: bool = False) -> int:
        """Delete documents (all their chunks) by id; returns the number of chunks removed."""

    @abstractmethod
    def search_encoded(self, encoded: EncodeResult, plan: SearchPlan) -> list[list[Hit]]: ...

    @abstractmethod
    def get(self, doc_id: str) -> list[Chunk]:
        """The stored chunks of one document (KeyError-like `InputError` when absent)."""

    @abstractmethod
    def doc_ids(self) -> list[str]:
        """Ids of every document in the index."""

    @abstractmethod
    def info(self) -> dict[str, Any]: ...

    @abstractmethod
    def save(self) -> None:
        """Make every change so far durable (a commit)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def __len__(self) -> int:
        """Number of documents."""

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    return merged, rest


def _check_for_model(settings: IndexSettings, embedder: Embedder) -> None:
    """Settings that depend on the model: truncation within its limit, a ColBERT reduction below its width."""
    limit = embedder.position_limit
    if settings.max_length is not None and settings.max_length > limit:
        raise InputError(
            f"max_length {settings.max_length} exceeds the model's limit of {limit} tokens",
            cli=f"--max-length {settings.max_length} exceeds the model's limit of {limit} tokens",
        )
    colbert = embedder.model.colbert_head
    full = int(colbert.out_features) if colbert is not None else None
    if settings.colbert_dim is not None and full is not None and settings.colbert_dim >= full:
        raise InputError(
            f"colbert_dim must be between 1 and {full - 1} (the model's ColBERT vectors have {full}), "
            f"got {settings.colbert_dim}",
            cli=f"--colbert-dim must be between 1 and {full - 1} (the model's ColBERT vectors have {full}), "
            f"got {settings.colbert_dim}",
        )


def sample_ids(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def already_indexed(ids: Sequence[str]) -> InputError:
    """Adding documents whose ids the index has (in each interface's own words)."""
    what = f"{len(ids)} document id(s) already in the index: {sample_ids(ids)}"
    return InputError(f"{what} (update() replaces them)", cli=f"{what} (--upsert replaces them)")


def not_indexed(ids: Sequence[str], action: str) -> InputError:
    """Updating (`action="update"`) or deleting (`"delete"`) documents the index does not have."""
    what = f"unknown document id(s): {sample_ids(ids)}"
    if action == "update":
        return InputError(
            f"{what} (add() adds new documents; update(..., upsert=True) adds or replaces)",
            cli=f"{what} (trivec index add --upsert adds or replaces)",
        )
    return InputError(f"{what} (missing_ok=True ignores them)", cli=f"{what} (--missing-ok ignores them)")


def load_model(model: str | os.PathLike[str] | Embedder) -> Embedder:
    """An `Embedder` from an `Embedder` or a model name / directory."""
    if isinstance(model, Embedder):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Embedder.from_pretrained(model)
    raise InputError(f"model must be an Embedder or a model name/path, not {type(model).__name__}")
