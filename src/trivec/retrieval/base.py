"""What every index backend implements and shares: the interface, model and prompts, adding, searching.

An index stores chunks of documents with the three representations of one model and answers searches:
dense top-k ∪ sparse top-k → exact per-mode scores of the candidates (ColBERT MaxSim re-ranks them) →
weighted, RRF, z-score or auto fusion (where a call says nothing: the model's `fusion_weights` and
`fusion`, else 0.4 / 0.2 / 0.4 weighted; `searcher.py`, `fusion.py`). The embedded backend keeps everything
in a directory; the Qdrant backend in a Qdrant collection. Both take the same calls; `Index` (`index.py`)
creates and opens them.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from trivec import heap
from trivec.errors import InputError
from trivec.inference.encoder import Embedder, EncodeResult
from trivec.inference.loading import load_embedder
from trivec.inference.spans import overlong_notice
from trivec.inference.text_outputs import ColbertCoder
from trivec.models.prompts import DOCUMENT, QUERY, ROLES
from trivec.retrieval.corpus import Chunk, Document, chunk_documents, coerce_documents
from trivec.retrieval.identity import ModelIdentity, check_same, identify
from trivec.retrieval.plan import SearchPlan, plan_search
from trivec.retrieval.rerank import load_reranker, rerank_depth, rerank_hits
from trivec.retrieval.searcher import Hit
from trivec.retrieval.settings import IndexSettings
from trivec.vectors import cosine_ready

if TYPE_CHECKING:
    from trivec.inference.reranker import Reranker

# chunks encoded, then written, at a time: the float32 token vectors of one batch are what ingestion holds
# beyond the model (≈ 256 × 220 tokens × 384 × 4 B ≈ 90 MB for m3-small on Cranfield), whatever the corpus
ENCODE_BATCH = 256

logger = logging.getLogger("trivec.retrieval")


def encode_chunks(
    embedder: Embedder,
    chunks: Sequence[Chunk],
    sparse: bool,
    colbert: bool,
    max_length: int | None,
    progress: bool = False,
    prompt: str | None = None,
    colbert_coder: ColbertCoder | None = None,
) -> Iterator[tuple[list[Chunk], EncodeResult]]:
    """Encode chunks in batches as documents (`prompt`, else the model's `document` prompt, before each;
    unit-length dense vectors: cosine even for models that do not normalise). `progress`: a bar on a
    terminal, a log line every 10 s otherwise (`trivec.progress`). `colbert_coder`: ColBERT rows come as
    `colbert_codes`, coded as each forward pass gives them (the batch's float32 rows are never all held)."""
    from trivec.progress import Progress

    bar = Progress(len(chunks), "encode", "chunks", enabled=progress)
    before = embedder.resolve_prompt(DOCUMENT, prompt)
    cut: dict[str, int] = {}  # chunks read on their first max_length tokens only: said at the end
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
            colbert_coder=colbert_coder,
            trim_heap=True,
        )
        if colbert_coder is not None and result.colbert is not None:  # given back uncoded (worker processes)
            result.colbert_codes, result.colbert = [colbert_coder(rows) for rows in result.colbert], None
        result.dense = unit(result.dense, embedder)
        asked = embedder.with_prompt([c.embed_text for c in batch], prompt=before)  # as encode read them
        for i, tokens in embedder.overlong(asked, max_length, read=result.num_tokens).items():
            cut[batch[i].id] = tokens
        bar.update(len(batch))
        yield batch, result
        # not held while the next batch is encoded: one batch's float32 token vectors in memory, not two;
        # and the heap they leave behind given back, or its holes stay resident
        del batch, result
        heap.trim()
    bar.close()
    if cut:
        hint = "; the rest of them cannot be found — chunk_tokens (--chunk-tokens) indexes them whole"
        logger.warning(overlong_notice("document(s)", cut, max_length or embedder.max_length, hint))


def unit(vectors: np.ndarray | None, embedder: Embedder) -> np.ndarray | None:
    """Dense vectors of `embedder` for cosine scoring (`cosine_ready`); None stays None."""
    return None if vectors is None else cosine_ready(vectors, embedder.model.normalize)


def check_query_texts(texts: Sequence[object]) -> None:
    """Refuse a query that is not a string, or is empty or only spaces: it would match on its prompt alone,
    confident hits for nothing asked (`InputError` naming the query, counted from 1)."""
    for number, text in enumerate(texts, start=1):
        if not isinstance(text, str):
            raise InputError(f"query {number}: expected a string, got {type(text).__name__}")
        if not text.strip():
            raise InputError(f"query {number} is empty (or only spaces): nothing to search for")


class BaseIndex(ABC):
    """A searchable, persistent collection of documents encoded by one model: what a backend implements
    (storing chunks, searching encoded queries) and what every backend shares (chunking, encoding, plans)."""

    identity: ModelIdentity
    settings: IndexSettings
    location: str

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder

    # ------------------------------------------------------------------ model
    @property
    def embedder(self) -> Embedder:
        """The index's model (loaded from the recorded name on first use)."""
        if self._embedder is None:
            if not self.identity.name:
                raise InputError(f"{self.location}: the index does not record a model name; pass model=...")
            embedder = load_embedder(self.identity.name)
            check_same(self.identity, identify(embedder), self.location)
            self._embedder = embedder
        return self._embedder

    def _adopt_model(self, model: str | os.PathLike[str] | Embedder | None) -> None:
        if model is None:
            return
        embedder = load_embedder(model)
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
    def _chunks(self, docs: Sequence[Document]) -> list[Chunk]:
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
            colbert_coder=self._colbert_coder(),
        )

    def _colbert_coder(self) -> ColbertCoder | None:
        """How this index codes a document's ColBERT rows when it knows before encoding (coded as they are
        encoded, the float32 rows are not held); None: they are stored as given, or coded when written."""
        return None

    def _takes_colbert_codes(self) -> bool:
        """Whether documents may bring their ColBERT rows coded by this index's settled codec."""
        return False

    def add(self, documents: Sequence[Document | Mapping[str, Any]]) -> int:
        """Add new documents (ids must be new); returns the number of chunks stored."""
        if not documents:
            raise InputError("no documents to add")
        docs = coerce_documents(documents)
        self.check_new(docs)
        return self._add_chunks(self._chunks(docs), None)

    def present(self, doc_ids: Sequence[str]) -> set[str]:
        """The ids among `doc_ids` that the index holds (a lookup of each, no model needed)."""
        return self._present(list(doc_ids))

    def check_new(self, documents: Sequence[Document]) -> None:
        """Refuse documents whose ids the index has, before anything is encoded (the store checks again
        when it writes); a lookup of their ids (`_present`), no model needed."""
        present = self._present([d.id for d in documents])
        again = [d.id for d in documents if d.id in present]
        if again:
            raise already_indexed(again)

    def add_encoded(self, documents: Sequence[Document | Mapping[str, Any]], encoded: EncodeResult) -> int:
        """Add documents whose vectors were computed already (one row per document, no chunking): `encoded`
        must come from this index's model (`Embedder.encode(passages, prompt=index.prompt("document"))`)."""
        if not documents:
            raise InputError("no documents to add")
        chunks = chunk_documents(coerce_documents(documents))
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
                docs = coerce_documents(documents)
                again = [d.id for d in docs if d.id in seen]
                if again:
                    raise InputError(f"document id {again[0]!r} appears in two batches")
                seen.update(d.id for d in docs)
                chunks = chunk_documents(docs)
                self._check_encoded(encoded, len(chunks), queries=False)
                yield chunks, encoded

        return self._add_chunks([], checked())

    def _check_encoded(self, encoded: EncodeResult, n: int, queries: bool) -> None:
        """Shapes of pre-computed vectors against the index's model. Documents may bring their ColBERT rows
        coded (`colbert_codes`) by this index's settled codec (`Index.codec.encode`)."""
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
            if name == "colbert" and value is None and encoded.colbert_codes is not None and not queries:
                if not self._takes_colbert_codes():  # no settled codec to have coded them with
                    raise InputError("this index codes ColBERT vectors itself: give them, not codes")
                value = encoded.colbert_codes  # coded by this index's codec (`Index.codec.encode`)
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
        chunks = self._chunks(coerce_documents(documents))
        ids = list(dict.fromkeys(c.doc_id for c in chunks))
        return self._replace(ids, chunks, upsert)

    def search(
        self,
        queries: str | Sequence[str],
        top_k: int = 10,
        *,
        mode: str = "hybrid",
        weights: Mapping[str, float] | Sequence[float] | None = None,
        fusion: str | None = None,
        candidates: int | None = None,
        prompt: str | None = None,
        max_length: int | None = None,
        rerank: str | os.PathLike[str] | Reranker | None = None,
        rerank_depth: int | None = None,
        language: str | None = None,
    ) -> list[list[Hit]]:
        """Search with query texts (the index's query prompt before each, or `prompt`; truncated like the
        documents unless `max_length` says otherwise); one list of hits per query, always — a single string
        is one query (`index.search("q")[0]` are its hits). `rerank`: a cross-encoder (`Reranker`, directory or hub id) that re-scores each query's top
        `rerank_depth` hits (default max(100, top_k)) before the best `top_k` are returned
        (`trivec.retrieval.rerank`). `language`: the queries' language (ISO 639-1), whose weights the model
        fuses with where it has some and the call gives none."""
        texts = [queries] if isinstance(queries, str) else list(queries)
        check_query_texts(texts)
        reranker, depth = self._reranker(rerank, rerank_depth, top_k)
        if not texts:
            return []
        defaults = self.embedder.fusion_defaults.for_language(language)
        plan = plan_search(mode, self.modes, weights, fusion, depth, candidates, defaults)
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
        return results

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
        fusion: str | None = None,
        candidates: int | None = None,
        language: str | None = None,
    ) -> list[list[Hit]]:
        """Search with already-encoded queries (`Embedder.encode(queries, prompt=index.prompt("query"))` of
        this index's model); `language` as in `search`."""
        defaults = self.embedder.fusion_defaults.for_language(language)
        plan = plan_search(mode, self.modes, weights, fusion, top_k, candidates, defaults)
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
    def _present(self, doc_ids: Sequence[str]) -> set[str]:
        """The ids among `doc_ids` that the index has: a lookup of each, never a scan of the index."""

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

    def __enter__(self) -> BaseIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
