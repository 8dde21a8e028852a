"""Which tokens of a text the encoder reads, and as what: the tokens past the length limit (read on their
first tokens only, which callers say), and the tokens of the prompt put before it (no lexical weight)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def overlong(
    tokenizer: Any, texts: Sequence[str], limit: int, read: Sequence[int] | None = None
) -> dict[int, int]:
    """The texts longer than `limit` tokens, special tokens included, as position → their full token count.
    Only texts that may be longer are tokenised: with `read` (the tokens encoding read of each, its
    `num_tokens`), those that filled the limit; else those of more than a quarter as many characters as the
    limit (a token spans at least one character, but normalisation may spell one character as a few)."""
    if read is not None:
        candidates = [i for i, tokens in enumerate(read) if tokens >= limit]
    else:
        specials = tokenizer.num_special_tokens_to_add()
        candidates = [i for i, text in enumerate(texts) if 4 * len(text) + specials > limit]
    if not candidates:
        return {}
    full = tokenizer([texts[i] for i in candidates], verbose=False)["input_ids"]
    return {i: len(ids) for i, ids in zip(candidates, full, strict=True) if len(ids) > limit}


def overlong_notice(what: str, cut: Mapping[str, int], limit: int, hint: str = "") -> str:
    """One line saying which inputs (`cut`: label → full token count, from `overlong`) were read on their
    first `limit` tokens only, naming up to five; `hint`: what to do about it."""
    named = ", ".join(f"{label} ({tokens:,} tokens)" for label, tokens in list(cut.items())[:5])
    more = f" and {len(cut) - 5:,} more" if len(cut) > 5 else ""
    return f"{len(cut):,} {what} longer than {limit} tokens, read on their first {limit} only: {named}{more}{hint}"


def after_prompt(tokenizer: Any, ids: Sequence[Sequence[int]], prompt: str) -> list[int] | None:
    """Where each text's own tokens begin: after the leading special token and, when the text's tokens start
    with the prompt's, after those (None: no prompt). The prompt's tokens get no lexical weight — a prompt is
    in every query or every document, and its weights would make each query match each document on `passage`
    and `:`, an empty one included."""
    if not prompt:
        return None
    piece = list(tokenizer(prompt.rstrip() or prompt, add_special_tokens=False)["input_ids"])
    lead = 0 if tokenizer.cls_token_id is None else 1
    end = lead + len(piece)
    return [end if list(text[lead:end]) == piece else lead for text in ids]
