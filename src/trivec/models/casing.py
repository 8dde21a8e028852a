"""Case in a cased vocabulary: text written in capitals read in lower case, and lexical keys read in lower case.

XLM-R's vocabulary is cased and learned from ordinary text: a word in capitals is cut into short,
rare pieces (`INTERESTED` → `▁INTER`, `ESTE`, `D`; `COMPUTER` → `▁COMP`, `U`, `TER`), so the sparse head's lexical weights and the
ColBERT token vectors of an all-capitals document match nothing that a normally written query contains, and
the dense vector drifts too. Old test collections, telexes, legal and library records are typed that way.
A model whose `trivec_config.json` sets `"fold_capitals": true` lower-cases such texts before tokenising.
The rule is fixed (not fitted to any data): a text is "in capitals" when at least `MIN_CASED_LETTERS` of
its letters are upper-case and they are more than half of all its letters (cased or not). Acronyms in
normal sentences (`NASA`, `BGE-M3`), short all-capitals queries, and Latin acronyms inside Chinese, Japanese,
Thai or Arabic text (whose letters have no case) keep their case.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from trivec.errors import CheckpointError

MIN_CASED_LETTERS = 20
WORD_MARKER = "\u2581"  # SentencePiece's `▁`: a piece that starts a word


def in_capitals(text: str) -> bool:
    """Whether `text` is written in capitals (see the module doc)."""
    upper = letters = 0
    for char in text:
        if char.isalpha():
            letters += 1
            upper += char.isupper()
    return upper >= MIN_CASED_LETTERS and 2 * upper > letters


def fold_capitals(text: str) -> str:
    """`text` lower-cased when it is written in capitals, else unchanged."""
    return text.lower() if in_capitals(text) else text


def lower_case(text: str) -> str:
    """`text.lower()`, with the dotted capital I (`İ`) lower-cased to `i` rather than `i` + a combining dot
    (an `i` written with a combining dot above becomes a plain `i` too)."""
    return text.lower().replace("i\u0307", "i")


class LowercaseKeys:
    """Re-keys a text's sparse weights so that lexical matching ignores case (a model's
    `"lowercase_sparse_keys": true`).

    XLM-R's vocabulary is cased and cuts the two spellings of a word differently (`Rusia` → `▁Rusia`,
    `rusia` → `▁rus`, `ia`; `Hak` vs `hak`), so a question typed in lower case shares no lexical key with a
    paragraph that names the same thing capitalised — a match BM25, which lower-cases every word, makes. The
    sparse head still weighs the pieces of the text as written (the model reads it cased); each word with
    capitals is then cut again in lower case, and each lower-case piece takes the largest weight of the
    original pieces whose characters it overlaps (all of them where lower-casing changes the word's length).
    Keys stay vocabulary ids; a text without capitals (Chinese, Thai, Arabic, or lower case) keeps its
    weights exactly. Words are runs of pieces starting with `▁`, so only SentencePiece vocabularies qualify.
    Training keys the bag of words the same way (`M3Model.sparse_vocab_vectors`); the IDF start of a new
    sparse head (`trivec.training.sparse_init`) still counts the pieces as written.
    """

    def __init__(self, tokenizer: Any, special_ids: frozenset[int]) -> None:
        if not all(tokenizer.tokenize(word)[0].startswith(WORD_MARKER) for word in ("word", "Word")):
            raise CheckpointError(
                "lowercase_sparse_keys needs a SentencePiece vocabulary (pieces starting a word with "
                f"{WORD_MARKER!r}), and {type(tokenizer).__name__} is not one"
            )
        self._tokenizer = tokenizer
        self._pieces: list[str] = [p or "" for p in tokenizer.convert_ids_to_tokens(range(len(tokenizer)))]
        special = np.zeros(len(self._pieces), dtype=bool)
        special[[i for i in special_ids if 0 <= i < len(self._pieces)]] = True
        # a word starts at a piece with the word marker; every special token is a word of its own
        self._special = special
        self._starts = special | np.array([p.startswith(WORD_MARKER) for p in self._pieces])
        self._cased = ~special & np.array([lower_case(p) != p for p in self._pieces])
        # ids a lower-case cut must not produce (a special token spelled in the text)
        self._reserved = frozenset(special_ids) | frozenset(tokenizer.all_special_ids)
        # per word ≈ 300 bytes: 65,536 words ≈ 20 MB (a miss costs one tokenizer call, ≈ 0.1–0.3 ms)
        self._cut = functools.lru_cache(maxsize=1 << 16)(self._lower_cut)

    def __call__(self, token_ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keys of one text and their weights; a key repeats once per position it takes a weight from
        (`SparseVector.from_token_weights` keeps the largest, as it does for a piece that repeats)."""
        keys, positions = self.pairs(token_ids)
        return keys, np.asarray(weights, dtype=np.float32)[positions]

    def pairs(self, token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(keys, positions)`: each key of the text `token_ids` spell, with a position whose weight it takes
        — the weight of a key is the largest over its pairs (the same in training, `M3Model.sparse_vocab_vectors`)."""
        ids = np.asarray(token_ids, dtype=np.int64)
        cased = self._cased[ids]
        if not cased.any():
            return ids, np.arange(ids.size)
        boundary = self._starts[ids]
        boundary[0] = True
        boundary[1:] |= self._special[ids[:-1]]  # and so is what follows one
        word = np.cumsum(boundary) - 1
        first = np.flatnonzero(boundary)
        last = np.append(first[1:], ids.size)
        recut = np.unique(word[cased])
        kept = np.flatnonzero(~np.isin(word, recut))
        out_keys, out_positions = [ids[kept]], [kept]
        for k in recut.tolist():
            start = int(first[k])
            keys, positions = self._cut(tuple(ids[start : int(last[k])].tolist()))
            out_keys.append(keys)
            out_positions.append(start + positions)
        return np.concatenate(out_keys), np.concatenate(out_positions)

    def batch_pairs(self, token_ids: np.ndarray, filler: int) -> tuple[np.ndarray, np.ndarray]:
        """`pairs` of each row of `[B, L]` padded ids, as `[B, K]` arrays; short rows filled with the key
        `filler` (a special id, which has no weight) at position 0."""
        rows = [self.pairs(row) for row in np.asarray(token_ids)]
        width = max((keys.size for keys, _ in rows), default=0)
        keys_out = np.full((len(rows), width), filler, dtype=np.int64)
        positions_out = np.zeros((len(rows), width), dtype=np.int64)
        for r, (keys, positions) in enumerate(rows):
            keys_out[r, : keys.size], positions_out[r, : keys.size] = keys, positions
        return keys_out, positions_out

    def _lower_cut(self, ids: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The pairs of the word `ids` spell: its lower-case pieces, each with the positions of `ids` it
        overlaps; the pieces as written where no lower-case cut of them exists (see `_cut_lower`)."""
        pieces = [self._pieces[i] for i in ids]
        word = "".join(pieces)
        lower = lower_case(word)
        cut = self._cut_lower(lower)
        if not cut:
            return np.asarray(ids, dtype=np.int64), np.arange(len(ids))
        keys = np.asarray(self._tokenizer.convert_tokens_to_ids(cut), dtype=np.int64)
        if "".join(cut) != lower or len(lower) != len(word):  # no character alignment: every piece each
            return np.repeat(keys, len(ids)), np.tile(np.arange(len(ids)), len(cut))
        ends = np.cumsum([len(p) for p in pieces])
        starts = ends - [len(p) for p in pieces]
        pair_keys, pair_positions, position = [], [], 0
        for key, piece in zip(keys.tolist(), cut, strict=True):
            begin, position = position, position + len(piece)
            overlapped = np.flatnonzero((starts < position) & (ends > begin)).tolist()
            pair_keys += [key] * len(overlapped)
            pair_positions += overlapped
        return np.asarray(pair_keys, dtype=np.int64), np.asarray(pair_positions, dtype=np.int64)

    def _cut_lower(self, lower: str) -> list[str]:
        """The pieces of the lower-cased word `lower`, or [] where they would not be plain pieces (a special
        token spelled in the text: `<MASK>` keeps its pieces as written). A word that does not start with the
        word marker — the rest of one after an unknown character or a CLS that MCLS inserted — is cut as a
        word of its own."""
        cut = self._tokenizer.tokenize(lower.removeprefix(WORD_MARKER))
        if not lower.startswith(WORD_MARKER) and cut and cut[0] == WORD_MARKER:
            cut = cut[1:]  # the marker the tokenizer put before it, as a piece of its own
        ids = self._tokenizer.convert_tokens_to_ids(cut)
        return [] if not cut or self._reserved.intersection(ids) else cut
