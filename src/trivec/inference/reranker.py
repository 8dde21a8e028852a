"""`Reranker`: score (query, passage) pairs with a cross-encoder, as FlagEmbedding's `FlagReranker` does.

Pairs are built exactly as FlagEmbedding 1.4.2 builds them (checked token for token against
`tiny-reranker/reference.json`): the query (with its instruction) is cut to `query_max_length` tokens and the
passage to `max_length`, both without special tokens; the cut ids are decoded back to text and the pair is
tokenised as `<s> q </s></s> p </s>` (BERT: `[CLS] q [SEP] p [SEP]` with token types 0/1), truncating only the
passage to `max_length`. An empty passage gives the query alone (`<s> q </s>`). Pairs are then sorted by
length and packed into batches under a token budget, as `Embedder` does, and the scores come back in input
order: raw logits, or their sigmoid with `normalize=True`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from trivec.errors import InputError
from trivec.inference.batching import default_batch_tokens, plan_batches
from trivec.inference.devices import resolve_device
from trivec.inference.precision import AUTO, check_dtype, resolve_dtype
from trivec.models.cross_encoder import (
    load_cross_encoder,
    position_limit,
    read_reranker_settings,
    save_cross_encoder,
)
from trivec.textcheck import check_text

DEFAULT_MAX_LENGTH = 512  # FlagReranker's default
INSTRUCTION_FORMAT = "{}{}"  # FlagReranker's query_instruction_format


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise InputError(
            f"{name} must be {what}, got {value!r}",
            cli=f"--{name.replace('_', '-')} must be {what}, got {value!r}",
        )
    return value


def check_pairs(pairs: Any) -> list[tuple[str, str]]:
    """`pairs` as a list of (query, passage) string pairs; anything else is a one-line `InputError`."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise InputError(f"pairs must be a list of (query, passage) pairs, not {type(pairs).__name__}")
    items = list(pairs)
    if len(items) == 2 and all(isinstance(x, str) for x in items):
        items = [tuple(items)]  # one pair, as FlagReranker.compute_score(['q', 'p']) takes it
    out: list[tuple[str, str]] = []
    for position, pair in enumerate(items):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(x, str) for x in pair):
            raise InputError(f"pair at position {position} must be a (query, passage) pair of strings")
        check_text(pair[0], f"the query of pair {position}")
        check_text(pair[1], f"the passage of pair {position}")
        out.append((pair[0], pair[1]))
    return out


@dataclass
class PairInputs:
    """Tokenised pairs, in input order: token ids and (for BERT-style models) token type ids per pair."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


class PairTokenizer:
    """FlagReranker's pair building (see the module doc) for one tokenizer; `Reranker` and the reranker
    trainer share it, so a model is trained on exactly the inputs it is later scored on."""

    def __init__(
        self,
        tokenizer: Any,
        limit: int,
        *,
        max_length: int | None = None,
        query_max_length: int | None = None,
        query_instruction: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.position_limit = limit
        self._types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        self.max_length = self._check_lengths(
            max_length if max_length is not None else min(DEFAULT_MAX_LENGTH, self.position_limit),
            query_max_length,
        )[0]
        self.query_max_length = query_max_length
        if query_instruction is not None:
            if not isinstance(query_instruction, str):
                raise InputError(
                    f"query_instruction must be a string, not {type(query_instruction).__name__}"
                )
            check_text(query_instruction, "the query instruction")
        self.query_instruction = query_instruction or None

    @property
    def with_token_types(self) -> bool:
        """Whether pairs carry token type ids (BERT-style models; XLM-R has none)."""
        return self._types

    # ------------------------------------------------------------------ tokenisation
    def _check_lengths(self, max_length: int, query_max_length: int | None) -> tuple[int, int]:
        _positive_int(max_length, "max_length", minimum=4)
        if max_length > self.position_limit:
            raise InputError(
                f"max_length {max_length} exceeds the model's limit of {self.position_limit} tokens",
                cli=f"--max-length {max_length} exceeds the model's limit of {self.position_limit} tokens",
            )
        specials = int(self.tokenizer.num_special_tokens_to_add(pair=True))
        room = max_length - specials
        if query_max_length is None:
            return max_length, min(max_length * 3 // 4, room)
        _positive_int(query_max_length, "query_max_length")
        if query_max_length > room:
            raise InputError(
                f"query_max_length {query_max_length} leaves no room for the passage: at most max_length − "
                f"{specials} = {room}",
                cli=f"--query-max-length {query_max_length} leaves no room for the passage: at most "
                f"--max-length − {specials} = {room}",
            )
        return max_length, query_max_length

    def tokenize_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        max_length: int | None = None,
        query_max_length: int | None = None,
        query_instruction: str | None = None,
    ) -> PairInputs:
        """The model inputs of each pair, as FlagReranker builds them (see the module doc)."""
        items = check_pairs(pairs)
        limit, query_limit = self._check_lengths(
            max_length if max_length is not None else self.max_length,
            query_max_length if query_max_length is not None else self.query_max_length,
        )
        instruction = self.query_instruction if query_instruction is None else query_instruction
        if instruction:
            check_text(instruction, "the query instruction")
            items = [(INSTRUCTION_FORMAT.format(instruction, q), p) for q, p in items]
        if not items:
            return PairInputs([], [] if self._types else None)
        queries = self._cut([q for q, _ in items], query_limit)
        passages = self._cut([p for _, p in items], limit)
        ids: list[list[int]] = [[] for _ in items]
        types: list[list[int]] = [[] for _ in items]
        with_passage = [i for i, p in enumerate(passages) if p]
        alone = [i for i, p in enumerate(passages) if not p]
        if with_passage:
            self._encode(
                [queries[i] for i in with_passage],
                [passages[i] for i in with_passage],
                limit,
                with_passage,
                ids,
                types,
            )
        if alone:  # an empty passage: the query alone, as the tokenizer does for text_pair=""
            self._encode([queries[i] for i in alone], None, limit, alone, ids, types)
        return PairInputs(ids, types if self._types else None)

    def _cut(self, texts: list[str], limit: int) -> list[str]:
        """Each text cut to `limit` tokens (no special tokens), as text again (FlagEmbedding's round trip)."""
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=True,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return self.tokenizer.batch_decode(
            encoded, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def _encode(
        self,
        first: list[str],
        second: list[str] | None,
        limit: int,
        positions: list[int],
        ids: list[list[int]],
        types: list[list[int]],
    ) -> None:
        kwargs: dict[str, Any] = {
            "add_special_tokens": True,
            "max_length": limit,
            "return_attention_mask": False,
            "return_token_type_ids": self._types,
        }
        try:
            encoded = self.tokenizer(first, second, truncation="only_second" if second else True, **kwargs)
        except Exception:  # a query that re-tokenises longer than its cut: no passage left to truncate
            encoded = self.tokenizer(first, second, truncation="longest_first", **kwargs)
        for row, i in enumerate(positions):
            ids[i] = list(encoded["input_ids"][row])
            if self._types:
                types[i] = list(encoded["token_type_ids"][row])


class Reranker(PairTokenizer):
    """A cross-encoder reranker: one relevance score per (query, passage) pair.

    `query_instruction` is put before every query (`FlagReranker`'s `query_instruction_for_rerank`, format
    `"{}{}"`); `max_length` (default 512) bounds each pair, `query_max_length` (default `max_length * 3 // 4`)
    the query; `normalize=True` gives sigmoid scores in (0, 1) instead of raw logits. Each is a default that
    the scoring calls can override.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | torch.device | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        query_instruction: str | None = None,
        normalize: bool = False,
        batch_tokens: int | None = None,
        max_batch_size: int = 256,
        source: str | None = None,
    ) -> None:
        super().__init__(
            tokenizer,
            position_limit(model.config, tokenizer),
            max_length=max_length,
            query_max_length=query_max_length,
            query_instruction=query_instruction,
        )
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.normalize = bool(normalize)
        if batch_tokens is not None:
            _positive_int(batch_tokens, "batch_tokens")
        self.batch_tokens = batch_tokens if batch_tokens is not None else default_batch_tokens(self.device)
        self.max_batch_size = _positive_int(max_batch_size, "max_batch_size")
        self.source = source
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        max_length: int | None = None,
        query_max_length: int | None = None,
        query_instruction: str | None = None,
        normalize: bool = False,
        batch_tokens: int | None = None,
    ) -> Reranker:
        """Load a cross-encoder (`BAAI/bge-reranker-*` layout: a directory or a hub id); fp32 unless `dtype`.

        A checkpoint that is not a one-logit `*ForSequenceClassification` is refused (`CheckpointError`). A
        query instruction saved with the model (`trivec_reranker.json`) is used unless one is given."""
        model, tokenizer, directory = load_cross_encoder(name_or_path, dtype=_dtype(dtype))
        settings = read_reranker_settings(directory)
        if query_instruction is None and isinstance(settings.get("query_instruction"), str):
            query_instruction = settings["query_instruction"]
        return cls(
            model,
            tokenizer,
            device=device,
            max_length=max_length,
            query_max_length=query_max_length,
            query_instruction=query_instruction,
            normalize=normalize,
            batch_tokens=batch_tokens,
            source=str(name_or_path),
        )

    def save_pretrained(self, directory: str | os.PathLike[str]) -> os.PathLike[str]:
        """Save model and tokenizer in the bge-reranker layout (and the query instruction, if any)."""
        settings = {"query_instruction": self.query_instruction} if self.query_instruction else None
        return save_cross_encoder(self.model, self.tokenizer, directory, settings)

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        max_length: int | None = None,
        query_max_length: int | None = None,
        query_instruction: str | None = None,
        normalize: bool | None = None,
        batch_tokens: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Scores of (query, passage) pairs, float32 `[N]` in input order: logits, or sigmoids with
        `normalize=True` (default: the reranker's `normalize`)."""
        inputs = self.tokenize_pairs(
            pairs,
            max_length=max_length,
            query_max_length=query_max_length,
            query_instruction=query_instruction,
        )
        logits = self.forward_inputs(inputs, batch_tokens=batch_tokens, show_progress=show_progress)
        if self.normalize if normalize is None else normalize:
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        return logits

    predict = score  # sentence-transformers' CrossEncoder name

    def compute_score(
        self, sentence_pairs: Sequence[tuple[str, str]] | tuple[str, str], **kwargs: Any
    ) -> list[float] | float:
        """FlagReranker's call: a list of floats, or one float for a single pair `[query, passage]`."""
        single = (
            isinstance(sentence_pairs, (list, tuple))
            and len(sentence_pairs) == 2
            and all(isinstance(x, str) for x in sentence_pairs)
        )
        scores = self.score(sentence_pairs, **kwargs)  # type: ignore[arg-type]
        values = [float(x) for x in scores]
        return values[0] if single else values

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        return_documents: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Documents sorted by score, best first: `{"corpus_id", "score"[, "text"]}` (CrossEncoder.rank)."""
        if not isinstance(query, str):
            raise InputError(f"query must be a string, not {type(query).__name__}")
        if isinstance(documents, str) or not isinstance(documents, Iterable):
            raise InputError(f"documents must be a list of strings, not {type(documents).__name__}")
        docs = list(documents)
        if top_k is not None:
            _positive_int(top_k, "top_k")
        for position, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise InputError(f"document at position {position} is {type(doc).__name__}, not str")
        scores = self.score([(query, d) for d in docs], **kwargs)
        order = np.argsort(-scores, kind="stable")[: top_k if top_k is not None else len(docs)]
        ranked: list[dict[str, Any]] = []
        for i in order.tolist():
            item: dict[str, Any] = {"corpus_id": i, "score": float(scores[i])}
            if return_documents:
                item["text"] = docs[i]
            ranked.append(item)
        return ranked

    def forward_inputs(
        self, inputs: PairInputs, *, batch_tokens: int | None = None, show_progress: bool | None = None
    ) -> np.ndarray:
        """Logits (float32 `[N]`, input order) of tokenised pairs, in token-budget batches, longest first."""
        if batch_tokens is not None:
            _positive_int(batch_tokens, "batch_tokens")
        n = len(inputs)
        out = np.zeros(n, dtype=np.float32)
        if n == 0:
            return out
        lengths = [len(row) for row in inputs.input_ids]
        batches = plan_batches(lengths, batch_tokens or self.batch_tokens, self.max_batch_size)
        if show_progress is None:
            show_progress = n >= 5000 and sys.stderr.isatty()
        bar = tqdm(total=n, unit="pair", disable=not show_progress, desc="rerank")
        with torch.inference_mode():
            for batch in batches:
                tensors = self._pad(inputs, batch)
                logits = self.model(**tensors, return_dict=True).logits
                out[batch] = logits.view(-1).float().cpu().numpy()
                bar.update(len(batch))
        bar.close()
        return out

    def _pad(self, inputs: PairInputs, batch: list[int]) -> dict[str, torch.Tensor]:
        width = max(len(inputs.input_ids[i]) for i in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        types = (
            torch.zeros((len(batch), width), dtype=torch.long) if inputs.token_type_ids is not None else None
        )
        for row, i in enumerate(batch):
            ids = inputs.input_ids[i]
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
            if types is not None and inputs.token_type_ids is not None:
                types[row, : len(ids)] = torch.tensor(inputs.token_type_ids[i], dtype=torch.long)
        tensors = {"input_ids": input_ids.to(self.device), "attention_mask": attention_mask.to(self.device)}
        if types is not None:
            tensors["token_type_ids"] = types.to(self.device)
        return tensors


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """`dtype` for a cross-encoder: a name (`trivec.inference.precision`) or `auto`, which is float32 here —
    bf16's effect on reranking quality has not been measured (the embedder's `auto` rests on measurements)."""
    if check_dtype(dtype) == AUTO:
        return torch.float32
    return resolve_dtype(dtype, torch.device("cpu"))
