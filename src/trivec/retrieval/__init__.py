"""Retrieval: index a corpus with dense + sparse + ColBERT vectors and search it.

from trivec.retrieval import Index, read_corpus
index = Index.create("my-index", model="default")          # embedded: a directory, no service
index.add(read_corpus("corpus.jsonl"))
hits = index.search("how do wings stall?", top_k=5)        # dense ∪ sparse → ColBERT → weighted fusion
index = Index.open("my-index")                              # later; the recorded model is loaded on use

`backend="qdrant"` (with `url=` for a server or cluster) keeps the same calls on a Qdrant collection.
"""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.retrieval.base import SEARCH_MODES, Hit, Index, IndexSettings, SearchPlan, plan_search
    from trivec.retrieval.colbert import ColbertCodec
    from trivec.retrieval.corpus import Chunk, Document, chunk_documents, read_corpus
    from trivec.retrieval.embedded import EmbeddedIndex
    from trivec.retrieval.fusion import fuse, merge_top_k, rrf_scores, top_k
    from trivec.retrieval.identity import ModelIdentity, ModelMismatchError, identify
    from trivec.retrieval.manifest import IndexLockedError, NotAnIndexError
    from trivec.retrieval.segment import CorruptIndexError

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SEARCH_MODES": "trivec.retrieval.base",
        "Hit": "trivec.retrieval.base",
        "Index": "trivec.retrieval.base",
        "IndexSettings": "trivec.retrieval.base",
        "SearchPlan": "trivec.retrieval.base",
        "plan_search": "trivec.retrieval.base",
        "ColbertCodec": "trivec.retrieval.colbert",
        "Chunk": "trivec.retrieval.corpus",
        "Document": "trivec.retrieval.corpus",
        "chunk_documents": "trivec.retrieval.corpus",
        "read_corpus": "trivec.retrieval.corpus",
        "EmbeddedIndex": "trivec.retrieval.embedded",
        "fuse": "trivec.retrieval.fusion",
        "merge_top_k": "trivec.retrieval.fusion",
        "rrf_scores": "trivec.retrieval.fusion",
        "top_k": "trivec.retrieval.fusion",
        "ModelIdentity": "trivec.retrieval.identity",
        "ModelMismatchError": "trivec.retrieval.identity",
        "identify": "trivec.retrieval.identity",
        "IndexLockedError": "trivec.retrieval.manifest",
        "NotAnIndexError": "trivec.retrieval.manifest",
        "CorruptIndexError": "trivec.retrieval.segment",
    },
)

__all__ = [
    "SEARCH_MODES",
    "Chunk",
    "ColbertCodec",
    "CorruptIndexError",
    "Document",
    "EmbeddedIndex",
    "Hit",
    "Index",
    "IndexLockedError",
    "IndexSettings",
    "ModelIdentity",
    "ModelMismatchError",
    "NotAnIndexError",
    "SearchPlan",
    "chunk_documents",
    "fuse",
    "identify",
    "merge_top_k",
    "plan_search",
    "read_corpus",
    "rrf_scores",
    "top_k",
]
