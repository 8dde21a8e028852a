"""The BM25 baseline (bm25s), with a tokeniser per language.

English: lower-cased words of two or more letters (bm25s's default pattern), bm25s's English stop words,
Snowball English stemming (PyStemmer) — the setup bm25s and MTEB's BM25 baseline use (unchanged, so published
English numbers stay comparable).

Every other language: one script-aware pipeline (`tokenize`), chosen by measurement (docs/evaluation.md):

1. Normalise: NFKC (full-width Latin and digits, half-width kana, ligatures and presentation forms to their
   plain letters); lower-case (Turkish and Azerbaijani `I`/`İ` → `ı`/`i`); decimal digits of any script to
   ASCII; Arabic-script diacritics and tatweel dropped; for Persian, Urdu, Pashto and Kurdish the Arabic
   `ي ى ك` become `ی ی ک` and the zero-width non-joiner splits words (queries are often typed with a space where
   the corpus has a ZWNJ); zero-width space splits; soft hyphen, ZWJ, word joiner and BOM are dropped.
2. Split by script: runs of Han / kana / Hangul → overlapping character unigrams and bigrams (no segmenter: on
   CMRC 2018 train and JaQuAD it matches or beats jieba and bigrams only); runs of Thai, Lao, Khmer or
   Myanmar → overlapping grapheme-cluster unigrams, bigrams and trigrams (a cluster keeps a consonant with its
   vowel and tone marks); everything else → words of letters, combining marks and digits. Punctuation,
   symbols, underscores and spaces only separate tokens: no token holds one.
3. Words get the language's Snowball stemmer when the installed PyStemmer has one (arabic, turkish,
   indonesian, french, ...), except Persian (no gain measured). No stop words outside English.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import regex

from trivec.evaluation.search import top_k
from trivec.languages import language_code

_WORD = re.compile(r"(?u)\b\w\w+\b")  # English only: bm25s's default token pattern (Python re's \w)

# Scripts written without spaces between words, tokenised as character n-grams (ー and 〆 are Common-script
# characters of Japanese words).
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}ー〆"
_SEA = r"\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
# Alphabets that get a word pattern each, so that a change of script splits a word; other letters share one.
_ALPHABETS = ("Latin", "Cyrillic", "Greek", "Armenian", "Georgian", "Hebrew", "Arabic")
_COMMON_LETTERS = r"[\p{Common}&&\p{L}]"  # modifier letters such as IPA ˈ ː: inside a word, never one alone


def _script(name: str) -> str:
    return r"\p{" + name + "}"


def _word(letters: str) -> str:
    """A word of one script: digits, a letter, then its letters, Common letters, combining marks and digits."""
    return r"\p{N}*" + letters + "[" + letters + _COMMON_LETTERS + r"\p{M}\p{N}]*"


_OTHER_LETTERS = r"[\p{L}--[" + _CJK + _SEA + "".join(map(_script, _ALPHABETS)) + r"\p{Common}]]"
_RUNS = regex.compile(
    "|".join(
        [
            "(?P<cjk>[[" + _CJK + r"]&&[\p{L}\p{N}]]+)",
            "(?P<sea>[[" + _SEA + r"]&&\p{L}][[" + _SEA + r"]&&[\p{L}\p{M}]]*)",
            *(_word("[" + _script(a) + r"&&\p{L}]") for a in _ALPHABETS),
            _word(_OTHER_LETTERS),
            r"\p{N}+",
        ]
    ),
    regex.VERSION1,
)
_GRAPHEME = regex.compile(r"\X")
_NON_ASCII_DIGIT = regex.compile(r"[\p{Nd}--[0-9]]", regex.VERSION1)
_ARABIC_MARKS = regex.compile(
    r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed\u0640]"
)
_DROPPED = dict.fromkeys(map(ord, "\u00ad\u200d\u2060\ufeff"))  # soft hyphen, ZWJ, word joiner, BOM
_SPLIT = {ord("\u200b"): " "}  # zero-width space
_ZWNJ = "\u200c"
_PERSIAN_LIKE = frozenset({"fa", "ur", "ps", "ku"})
_PERSIAN_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک"})
_TURKIC = frozenset({"tr", "az"})
_ARABIC_SCRIPT = frozenset({"ar", "fa", "ur", "ps", "ku", "sd", "ug"})
_CJK_LANGUAGES = frozenset({"zh", "ja", "ko"})
_SEA_LANGUAGES = frozenset({"th", "lo", "km", "my"})
CJK_NGRAMS = (1, 2)
SEA_NGRAMS = (1, 2, 3)

# fmt: off
# ISO 639-1 → PyStemmer (Snowball) algorithm; used when the installed PyStemmer has it. No Persian: the Snowball
# Persian stemmer gave no measurable gain over normalised words (docs/evaluation.md).
_SNOWBALL = {
    "ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
    "eo": "esperanto", "es": "spanish", "et": "estonian", "eu": "basque", "fi": "finnish", "fr": "french",
    "ga": "irish", "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian",
    "lt": "lithuanian", "nb": "norwegian", "ne": "nepali", "nl": "dutch", "nn": "norwegian", "no": "norwegian",
    "pl": "polish", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "st": "sesotho",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
# fmt: on


@cache
def _stemmer(algorithm: str) -> Callable[[list[str]], list[str]]:
    import Stemmer

    return Stemmer.Stemmer(algorithm).stemWords


@lru_cache(maxsize=1)
def _stemmer_algorithms() -> frozenset[str]:
    import Stemmer

    return frozenset(Stemmer.algorithms())


def stemmer_algorithm(language: str) -> str | None:
    """The Snowball algorithm used for a language's words (None: words are not stemmed)."""
    algorithm = _SNOWBALL.get(language)
    return algorithm if algorithm in _stemmer_algorithms() else None


@lru_cache(maxsize=1)
def _english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize_english(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in _english_stopwords()]
    return _stemmer("english")(words)


def _ascii_digit(match: regex.Match[str]) -> str:
    value = unicodedata.decimal(match.group(), None)  # None: a digit newer than Python's Unicode tables
    return match.group() if value is None else str(value)


def normalize(text: str, language: str) -> str:
    """Step 1 of `tokenize`: NFKC, language-aware lower case, ASCII digits, Arabic-script and format clean-up."""
    text = unicodedata.normalize("NFKC", text)
    if language in _TURKIC:
        text = text.replace("I", "ı").replace("İ", "i")
    text = text.lower().replace("i\u0307", "i")  # "İ".lower() outside Turkish: i + combining dot above
    text = _NON_ASCII_DIGIT.sub(_ascii_digit, text)
    text = _ARABIC_MARKS.sub("", text)
    if language in _PERSIAN_LIKE:
        text = text.translate(_PERSIAN_LETTERS).replace(_ZWNJ, " ")
    else:
        text = text.replace(_ZWNJ, "")
    return text.translate(_DROPPED).translate(_SPLIT)


def _ngrams(units: Sequence[str], sizes: Sequence[int]) -> list[str]:
    """Overlapping n-grams of `units` for each size; a run shorter than every size stays whole."""
    out = ["".join(units[i : i + n]) for n in sizes for i in range(len(units) - n + 1)]
    return out or ["".join(units)]


def tokenize(text: str, language: str) -> list[str]:
    """Tokens of `text` in `language` (ISO 639-1) by the non-English pipeline of this module's docstring."""
    tokens: list[str] = []
    words: list[str] = []
    for match in _RUNS.finditer(normalize(text, language)):
        run = match.group()
        if match.lastgroup == "cjk":
            tokens.extend(_ngrams(run, CJK_NGRAMS))
        elif match.lastgroup == "sea":
            tokens.extend(_ngrams(_GRAPHEME.findall(run), SEA_NGRAMS))
        else:
            words.append(run)
    algorithm = stemmer_algorithm(language)
    if algorithm and words:
        words = [w for w in _stemmer(algorithm)(words) if w]
    return tokens + words


@cache
def tokenizer_for(language: str) -> Callable[[str], list[str]]:
    """The tokeniser used for a language code (ISO 639-1; a Tatoeba ISO 639-3 code or a regional tag is mapped)."""
    code = language_code(language, "BM25 language")
    if code == "en":
        return tokenize_english

    def tokenize_language(text: str) -> list[str]:
        return tokenize(text, code)

    return tokenize_language


def describe_tokenizer(language: str) -> str:
    """One line saying how BM25 tokenises a language (recorded in each result's details)."""
    code = language_code(language, "BM25 language")
    if code == "en":
        return "english: lower-case words, bm25s English stop words, Snowball English stemmer"
    steps = "NFKC, lower-case" + (" (Turkish dotted/dotless i)" if code in _TURKIC else "") + ", ASCII digits"
    if code in _ARABIC_SCRIPT:
        steps += ", Arabic diacritics and tatweel removed"
    if code in _PERSIAN_LIKE:
        steps += ", Arabic yeh/kaf as Persian ی/ک, ZWNJ splits words"
    if code in _CJK_LANGUAGES:
        split = "Han/kana/Hangul runs as character unigrams+bigrams (no segmenter), other text as words"
    elif code in _SEA_LANGUAGES:
        split = (
            "Thai/Lao/Khmer/Myanmar runs as grapheme-cluster unigrams+bigrams+trigrams (no segmenter), "
            "other text as words"
        )
    else:
        split = "words split at spaces, punctuation, symbols and script changes"
    algorithm = stemmer_algorithm(code)
    stem = f"Snowball {algorithm} stemmer" if algorithm else "no stemmer"
    return f"{code}: {steps}; {split}; {stem}; no stop words"


@dataclass(frozen=True)
class Bm25Config:
    """bm25s parameters (its defaults: Lucene's BM25 variant, k1 1.5, b 0.75)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"

    def describe(self, language: str) -> dict[str, str | float]:
        """What a results file records of a BM25 run in `language`: library, parameters, tokenizer."""
        return {
            "library": "bm25s",
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "tokenizer": describe_tokenizer(language),
        }


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
