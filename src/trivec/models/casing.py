"""Text written in capitals, read in lower case by models with a cased vocabulary.

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

MIN_CASED_LETTERS = 20


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
