"""Retrieval: index a corpus with dense + sparse + ColBERT vectors and search it.

from trivec.retrieval import Index, read_corpus
index = Index.create("my-index", model="default")          # embedded: a directory, no service
index.add(read_corpus("corpus.jsonl"))
hits = index.search("how do wings stall?", top_k=5)[0]     # one list per query; dense ∪ sparse → ColBERT → fusion
index = Index.open("my-index")                              # later; the recorded model is loaded on use

`backend="qdrant"` (with `url=` for a server or cluster) keeps the same calls on a Qdrant collection.
"""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.retrieval.base import BaseIndex
    from trivec.retrieval.colbert import ColbertCodec
    from trivec.retrieval.corpus import Chunk, Document, chunk_documents, read_corpus
    from trivec.retrieval.embedded import EmbeddedIndex
    from trivec.retrieval.fusion import fuse, merge_top_k, rrf_scores, top_k, zscore_scores
    from trivec.retrieval.identity import ModelIdentity, ModelMismatchError, identify
    from trivec.retrieval.index import Index
    from trivec.retrieval.manifest import IndexLockedError, IndexReplacedError, NotAnIndexError
    from trivec.retrieval.plan import SEARCH_MODES, SearchPlan, plan_search
    from trivec.retrieval.searcher import Hit
    from trivec.retrieval.segment import CorruptIndexError
    from trivec.retrieval.settings import IndexSettings

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SEARCH_MODES": "trivec.retrieval.plan",
        "BaseIndex": "trivec.retrieval.base",
        "Hit": "trivec.retrieval.searcher",
        "Index": "trivec.retrieval.index",
        "IndexSettings": "trivec.retrieval.settings",
        "SearchPlan": "trivec.retrieval.plan",
        "plan_search": "trivec.retrieval.plan",
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
        "zscore_scores": "trivec.retrieval.fusion",
        "ModelIdentity": "trivec.retrieval.identity",
        "ModelMismatchError": "trivec.retrieval.identity",
        "identify": "trivec.retrieval.identity",
        "IndexLockedError": "trivec.retrieval.manifest",
        "IndexReplacedError": "trivec.retrieval.manifest",
        "NotAnIndexError": "trivec.retrieval.manifest",
        "CorruptIndexError": "trivec.retrieval.segment",
    },
)

__all__ = [
    "SEARCH_MODES",
    "BaseIndex",
    "Chunk",
    "ColbertCodec",
    "CorruptIndexError",
    "Document",
    "EmbeddedIndex",
    "Hit",
    "Index",
    "IndexLockedError",
    "IndexReplacedError",
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
    "zscore_scores",
]
