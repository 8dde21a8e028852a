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


@torch.no_grad()
def fit_sparse_head_to_idf(
    model: M3Model,
    passages: Sequence[str],
    max_length: int = 128,
    fit_passages: int = 2000,
    target_mean: float = 0.2,
    ridge: float = 1.0,
    batch_size: int = 32,
) -> dict[str, float]:
    """Set `model.sparse_head` so its weights approximate the passages' token IDF, scaled so the mean target
    weight is `target_mean`. IDF is counted over all `passages`; the regression uses the first `fit_passages`.
    Returns fit statistics (R², tokens used)."""
    if model.sparse_head is None:
        raise InputError("the model has no sparse head to initialise (load it with heads='init')")
    if len(passages) < 10:
        raise InputError(f"an IDF warm start needs at least 10 passages, got {len(passages)}")
    tokenizer = model.tokenizer
    special = set(model.special_token_ids)
    encoded = tokenizer(list(passages), truncation=True, max_length=max_length, add_special_tokens=True)
    ids_per_passage = [[i for i in ids if i not in special] for ids in encoded["input_ids"]]
    idf = bm25_idf(ids_per_passage, int(model.backbone.config.vocab_size))
    scale = target_mean / float(np.mean(np.concatenate([idf[ids] for ids in ids_per_passage if ids])))
    features, targets = [], []
    model.eval()
    sample = list(passages[:fit_passages])
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
        targets.append(idf[batch["input_ids"][keep].cpu().numpy()] * scale)
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
    return {"r2": r2, "tokens": float(x.shape[0]), "passages": float(len(passages)), "scale": scale}


__all__ = ["bm25_idf", "fit_sparse_head_to_idf"]
