"""IDF warm start of a new sparse head: fit `ReLU(Linear(h))` to each token's inverse document frequency.

A freshly initialised sparse head weighs tokens at random, and a short contrastive run on a small CPU
budget teaches it little lexical sense (docs/m3-training.md: the heads-only sparse scored 15–17 nDCG@10
against BM25's 55). BM25's core signal is IDF; a contextual encoder's last hidden states carry enough of a
token's identity for a linear map to recover much of it. So before training, the head is set by ridge
regression from hidden states to the (scaled) BM25 IDF of the token at each position, over a sample of
passages; training then starts from IDF-like lexical weights instead of noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trivec.errors import InputError
from trivec.models.m3 import M3Model


def bm25_idf(token_ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """BM25's IDF `ln(1 + (N − df + 0.5) / (df + 0.5))` of every vocabulary id over the given passages."""
    df = np.zeros(vocab_size, dtype=np.int64)
    for ids in token_ids:
        df[np.unique(np.asarray(ids, dtype=np.int64))] += 1
    n = len(token_ids)
    return np.log1p((n - df + 0.5) / (df + 0.5))


def _interleave(corpora: Sequence[Sequence[str]]) -> list[int]:
    """Positions (corpus, passage) taken in turn from every corpus, as flat indices into their concatenation."""
    starts = np.cumsum([0, *(len(c) for c in corpora)])
    order: list[int] = []
    for depth in range(max((len(c) for c in corpora), default=0)):
        order.extend(int(starts[k]) + depth for k, c in enumerate(corpora) if depth < len(c))
    return order


@torch.no_grad()
def fit_sparse_head_to_idf(
    model: M3Model,
    corpora: Sequence[Sequence[str]],
    max_length: int = 128,
    fit_passages: int = 2000,
    target_mean: float = 0.2,
    ridge: float = 1.0,
    batch_size: int = 32,
    *,
    per_corpus: bool = False,
) -> dict[str, float]:
    """Set `model.sparse_head` so its weights approximate the passages' token IDF, scaled so the mean target
    weight is `target_mean`; returns fit statistics (R², tokens used).

    `corpora`: the training passages, one list per training file. `per_corpus` False (`sparse_init: idf`):
    one IDF over every distinct passage, the regression on the first `fit_passages` of them in file order.
    `per_corpus` True (`sparse_init: idf_per_file`): each passage's tokens get the IDF of its own file —
    a word common in its language (English "a") stays common however few English passages the mix holds —
    and the regression takes its passages from every file in turn, so that no script is left to
    extrapolation when the first files fill the sample (the first 2,000 passages of a multilingual mix can
    all be Chinese and Japanese)."""
    if model.sparse_head is None:
        raise InputError("the model has no sparse head to initialise (load it with heads='init')")
    if isinstance(corpora, str) or any(isinstance(c, str) for c in corpora):
        raise InputError("corpora must be one list of passages per training file, not passages themselves")
    corpora = [list(dict.fromkeys(c)) for c in corpora]
    total = len(dict.fromkeys(p for c in corpora for p in c))
    if total < 10:
        raise InputError(f"an IDF warm start needs at least 10 passages, got {total}")
    tokenizer = model.tokenizer
    special = set(model.special_token_ids)
    vocab_size = int(model.backbone.config.vocab_size)
    if per_corpus:
        flat = [p for c in corpora for p in c]
        owner = np.repeat(np.arange(len(corpora)), [len(c) for c in corpora])
        ids_per_passage = _content_ids(tokenizer, flat, special, max_length)
        starts = np.cumsum([0, *(len(c) for c in corpora)])
        idf_of = [
            bm25_idf(ids_per_passage[starts[k] : starts[k + 1]], vocab_size) for k in range(len(corpora))
        ]
        first_seen: dict[str, int] = {}
        for position in _interleave(corpora):
            first_seen.setdefault(flat[position], position)
        chosen = list(first_seen.values())[:fit_passages]
        sample = [flat[i] for i in chosen]
        sample_idf = [idf_of[owner[i]] for i in chosen]
        every = [idf_of[owner[i]][ids] for i, ids in enumerate(ids_per_passage) if ids]
    else:
        passages = list(dict.fromkeys(p for c in corpora for p in c))
        ids_per_passage = _content_ids(tokenizer, passages, special, max_length)
        idf = bm25_idf(ids_per_passage, vocab_size)
        sample = passages[:fit_passages]
        sample_idf = [idf] * len(sample)
        every = [idf[ids] for ids in ids_per_passage if ids]
    scale = target_mean / float(np.mean(np.concatenate(every)))
    features, targets = [], []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(sample), batch_size):
        batch = tokenizer(
            sample[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        hidden = model.backbone(**batch).last_hidden_state.float()
        keep = batch["attention_mask"].bool()
        for token in special:
            keep &= batch["input_ids"] != token
        features.append(hidden[keep].cpu().numpy().astype(np.float64))
        ids = batch["input_ids"].cpu().numpy()
        rows = keep.cpu().numpy()
        for row in range(ids.shape[0]):
            targets.append(sample_idf[start + row][ids[row][rows[row]]] * scale)
    x = np.concatenate(features)
    y = np.concatenate(targets)
    x1 = np.hstack([x, np.ones((x.shape[0], 1))])
    gram = x1.T @ x1
    gram[np.arange(x.shape[1]), np.arange(x.shape[1])] += ridge
    solution = np.linalg.solve(gram, x1.T @ y)
    predicted = np.maximum(x1 @ solution, 0.0)
    r2 = 1.0 - float(np.sum((predicted - y) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
    linear = model.sparse_head.linear
    linear.weight.copy_(torch.as_tensor(solution[:-1], dtype=linear.weight.dtype).reshape(1, -1))
    linear.bias.copy_(torch.as_tensor(solution[-1:], dtype=linear.bias.dtype))
    return {"r2": r2, "tokens": float(x.shape[0]), "passages": float(total), "scale": scale}


def _content_ids(
    tokenizer: Any, passages: Sequence[str], special: set[int], max_length: int
) -> list[list[int]]:
    """Each passage's token ids as the fit reads it (truncated to `max_length`), special tokens left out."""
    encoded = tokenizer(list(passages), truncation=True, max_length=max_length, add_special_tokens=True)
    return [[i for i in ids if i not in special] for ids in encoded["input_ids"]]


__all__ = ["bm25_idf", "fit_sparse_head_to_idf"]
