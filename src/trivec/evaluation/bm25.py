"""The BM25 baseline (bm25s), with a tokeniser per language.

English: lower-cased words of two or more letters (bm25s's default pattern), bm25s's English stop words,
Snowball English stemming (PyStemmer) — the setup bm25s and MTEB's BM25 baseline use.
Chinese (and Japanese / Korean): no word segmenter. Each run of CJK ideographs becomes its overlapping
character bigrams (a lone character stays a unigram), other text becomes lower-cased words — the scheme of
Lucene's CJKAnalyzer, which Anserini/Pyserini use for their Chinese BM25 baselines (Mr. TyDi, MIRACL). It needs
no dictionary, so it is deterministic and has no out-of-vocabulary problem; bigrams keep most two-character
words intact, which single characters would not.
Other languages: lower-cased words with the language's Snowball stemmer when PyStemmer has one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from trivec.evaluation.search import top_k

_WORD = re.compile(r"(?u)\b\w\w+\b")
_CJK_CHAR = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_OR_WORD = re.compile(rf"[{_CJK_CHAR}]+|[^\W{_CJK_CHAR}]+", re.UNICODE)
_CJK_RUN = re.compile(rf"[{_CJK_CHAR}]+")
CJK_LANGUAGES = frozenset({"zh", "ja", "ko", "yue", "cmn"})
# fmt: off
_SNOWBALL = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "es": "spanish", "et": "estonian", "eu": "basque", "fa": "persian", "fi": "finnish", "fr": "french",
    "ga": "irish", "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil",
    "tr": "turkish",
}
# fmt: on


@cache
def _stemmer(algorithm: str) -> Callable[[list[str]], list[str]]:
    import Stemmer

    return Stemmer.Stemmer(algorithm).stemWords


@lru_cache(maxsize=1)
def _english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize_english(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in _english_stopwords()]
    return _stemmer("english")(words)


def tokenize_cjk(text: str) -> list[str]:
    """CJK runs → overlapping bigrams (unigram when alone); other runs → lower-cased words."""
    tokens: list[str] = []
    for piece in _CJK_OR_WORD.findall(text.lower()):
        if _CJK_RUN.fullmatch(piece):
            tokens.extend([piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)])
        else:
            tokens.append(piece)
    return tokens


def tokenizer_for(language: str) -> Callable[[str], list[str]]:
    """The tokeniser used for a language code (ISO 639-1, or a Tatoeba 639-3 code)."""
    if language == "en":
        return tokenize_english
    if language in CJK_LANGUAGES:
        return tokenize_cjk
    algorithm = _SNOWBALL.get(language)

    def plain(text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        return _stemmer(algorithm)(words) if algorithm else words

    return plain


def describe_tokenizer(language: str) -> str:
    if language == "en":
        return "english: lower-case words, bm25s English stop words, Snowball English stemmer"
    if language in CJK_LANGUAGES:
        return "cjk: overlapping character bigrams of CJK runs (Lucene CJKAnalyzer scheme), lower-case words otherwise"
    algorithm = _SNOWBALL.get(language)
    return f"plain: lower-case words{', Snowball ' + algorithm + ' stemmer' if algorithm else ''}"


@dataclass(frozen=True)
class Bm25Config:
    """bm25s parameters (its defaults: Lucene's BM25 variant, k1 1.5, b 0.75)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"


class Bm25Index:
    """A bm25s index over a corpus; `search` for top-k, `scores` for all documents of one query."""

    def __init__(
        self,
        texts: Sequence[str],
        language: str,
        config: Bm25Config | None = None,
        tokenize: Callable[[str], list[str]] | None = None,
    ) -> None:
        """`tokenize` replaces the language's tokeniser (e.g. a model's pieces, for comparisons)."""
        import bm25s

        self.config = config or Bm25Config()
        self.tokenize = tokenize or tokenizer_for(language)
        self.size = len(texts)
        self.retriever = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self.retriever.index([self.tokenize(t) for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query, `[N]` float32."""
        tokens = self.tokenize(query)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (document indices, scores) of the top `k` documents with a positive score."""
        k = min(k, self.size)
        results = []
        for query in queries:
            values = self.scores(query)
            top = top_k(values, k)
            top = top[values[top] > 0]
            results.append((top, values[top]))
        return results
