"""Which model built an index: its name and a fingerprint of its configuration and weights.

An index stores vectors of one model; querying it with another model gives silently wrong results, so the
manifest records the model and every search checks it. The fingerprint hashes the backbone config (minus
paths and versions), pooling / normalisation, the model's own query prompt, `lowercase_sparse_keys` when set,
the head shapes, and per weight
tensor its shape, a sample of values and the sum (rounded, so fp32/bf16 loads of one checkpoint still agree
only when their numbers do). Prompts an `Embedder` sets over the model's are not part of it: an index records
the prompts it was built with in its settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trivec.errors import TrivecError
from trivec.models.fingerprint import weights_sample

VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash"}


class ModelMismatchError(TrivecError):
    """The model given for a search (or an add) is not the model the index was built with."""


@dataclass(frozen=True)
class ModelIdentity:
    """What the manifest says about the model: enough to reload it and to refuse another one."""

    name: str
    fingerprint: str
    dense_dim: int
    has_sparse: bool
    has_colbert: bool
    colbert_dim: int | None
    vocab_size: int
    normalize: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def model_name(source: str | os.PathLike[str] | None) -> str:
    """The name to reload a model by: `default`, a hub id, or an absolute directory path."""
    text = str(source) if source is not None else ""
    if not text:
        return ""
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return text


def identify(embedder: Any) -> ModelIdentity:
    """The `ModelIdentity` of an `Embedder`."""
    model = embedder.model
    config = model.backbone.config.to_dict()
    stable = {k: v for k, v in sorted(config.items()) if k not in VOLATILE_CONFIG_KEYS}
    digest = hashlib.sha256()
    header = {
        "config": stable,
        "pooling": model.pooling,
        "normalize": bool(model.normalize),
        # the model's saved query prompt, under the key that held its query instruction before prompts, so
        # the fingerprints of indexes built then stay valid
        "query_instruction": model.prompts.get("query"),
        "vocab": len(model.tokenizer),
    }
    # lexical keys read in lower case: other sparse vectors than the same weights keyed by piece. Only when
    # set, so fingerprints from before the flag stay valid; `fold_capitals` is left out for the same reason
    # (m3-small has always set it, and its indexes must keep matching)
    if getattr(model, "lowercase_sparse_keys", False):
        header["lowercase_sparse_keys"] = True
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    # the float32 weights as loaded: a model loaded in bf16 / fp16 (dtype="auto") searches the indexes its
    # float32 self built, and the other way round
    stored = getattr(model, "float32_weights", None)
    digest.update(stored if stored is not None else weights_sample(model))
    colbert_dim = int(model.colbert_head.out_features) if model.colbert_head is not None else None
    return ModelIdentity(
        name=model_name(model.source),
        fingerprint=digest.hexdigest()[:32],
        dense_dim=int(model.hidden_size),
        has_sparse=bool(model.has_sparse),
        has_colbert=bool(model.has_colbert),
        colbert_dim=colbert_dim,
        vocab_size=len(model.tokenizer),
        normalize=bool(model.normalize),
    )


def check_same(index_model: ModelIdentity, given: ModelIdentity, where: str) -> None:
    """Raise `ModelMismatchError` when `given` is not the index's model."""
    if index_model.fingerprint != given.fingerprint:
        raise ModelMismatchError(
            f"{where} was built with model {index_model.name!r} (fingerprint {index_model.fingerprint}), "
            f"but the model given is {given.name!r} (fingerprint {given.fingerprint}); search it with the "
            "model that built it, or rebuild the index"
        )
