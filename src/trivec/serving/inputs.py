"""The checks every request's texts pass before they are queued: how many, how long (in characters, then in
tokens), and the prompt put before them — each refusal an `ApiError` that says what to change."""

from __future__ import annotations

from trivec.errors import InputError
from trivec.inference import Embedder
from trivec.serving.errors import ApiError
from trivec.serving.state import ServingState


def with_prompt(
    embedder: Embedder, texts: list[str], prompt_name: str | None, prompt: str | None = None
) -> tuple[str, list[str]]:
    """The prompt `Embedder.encode(prompt_name=, prompt=)` puts before the texts, and the texts as it feeds
    them to the model (their tokens are counted before they are queued; the batcher encodes the texts
    as given with that prompt); an unknown prompt name → 422."""
    try:
        before = embedder.resolve_prompt(prompt_name, prompt)
        return before, embedder.with_prompt(texts, prompt=before)
    except InputError as exc:
        raise ApiError(422, str(exc), param="prompt_name") from None


def fit_chars(state: ServingState, texts: list[str], truncate: bool, name: str) -> list[str]:
    """Texts within the character limit, checked before they are tokenised: a longer one is refused (413) —
    its tokens could only exceed the token limit, and counting them would hold a thread, the GIL and
    gigabytes for seconds — or, when the request truncates, cut to the limit (at a space near it, if any:
    the first `max_tokens` tokens lie well inside it)."""
    limit = state.max_chars
    out: list[str] | None = None
    for position, text in enumerate(texts):
        if len(text) <= limit:
            continue
        if not truncate:
            raise ApiError(
                413,
                f"{name}[{position}] has {len(text):,} characters, more than this server reads per text "
                f"({limit:,}, --max-chars; texts are limited to {state.max_tokens:,} tokens); shorten it, "
                'or send "truncate": true to cut it',
                param=name,
            )
        if out is None:
            out = list(texts)
        space = text.rfind(" ", limit - 256, limit)
        out[position] = text[: space if space > 0 else limit]
    return out if out is not None else texts


def check_count(state: ServingState, count: int) -> None:
    """Refuse (413) a request of more texts than `--max-texts`, before any of them is read further."""
    limit = state.config.limits.max_texts_per_request
    if count > limit:
        raise ApiError(
            413,
            f"{count} texts in one request; this server accepts at most {limit} (--max-texts); "
            "split the input into several requests",
        )


def token_limit(state: ServingState, requested: int | None, name: str) -> int:
    """The tokens per text a request encodes: its own `name` (e.g. `max_length`) when given — 422 past the
    server's limit, which no request may raise — else the server's limit."""
    if requested is None:
        return state.max_tokens
    if requested > state.max_tokens:
        raise ApiError(
            422,
            f"{name} {requested} exceeds this server's limit of {state.max_tokens} tokens per text",
            param=name,
        )
    return requested


def check_lengths(counts: list[int], limit: int, truncate: bool, name: str) -> int:
    """Refuse a text longer than `limit` unless truncating; return the tokens that will be encoded."""
    if not truncate:
        for position, count in enumerate(counts):
            if count > limit:
                raise ApiError(
                    413,
                    f"{name}[{position}] has {count} tokens, more than the limit of {limit} tokens per text; "
                    'shorten it, or send "truncate": true to cut it to the limit',
                    param=name,
                )
    return sum(min(count, limit) for count in counts)
