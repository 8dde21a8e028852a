"""`load_embedder`: the one way every API that takes "a model" turns it into an `Embedder`."""

from __future__ import annotations

import os

from trivec.errors import InputError
from trivec.inference.encoder import Embedder
from trivec.models import M3Model

ModelLike = Embedder | M3Model | str | os.PathLike[str]


def load_embedder(
    model: ModelLike,
    *,
    batch_tokens: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Embedder:
    """An `Embedder` from an `Embedder` (used as it is), an `M3Model`, a directory, `default` or a hub id;
    `batch_tokens` sets its token budget."""
    if isinstance(model, Embedder):
        embedder = model
    elif isinstance(model, M3Model):
        embedder = Embedder(model, device=device)
    elif isinstance(model, (str, os.PathLike)):
        embedder = Embedder.from_pretrained(model, device=device, dtype=dtype)
    else:
        raise InputError(
            f"model must be an Embedder, an M3Model or a model name/path, not {type(model).__name__}"
        )
    if batch_tokens is not None:
        if batch_tokens < 1:
            raise InputError(f"batch_tokens must be ≥ 1, got {batch_tokens}")
        embedder.batch_tokens = batch_tokens
    return embedder
