"""`TextEncoder`: the evaluation's view of a model — unique texts encoded once, any subset of M3's outputs.

Queries of retrieval and reranking tasks get the model's `query` prompt and their corpora its `document`
prompt; the texts of the other task types get its default prompt, if it has one. An optional record of every
dense vector (keyed by prompt name and text) lets benchmarks/mteb_parity.py hand mteb the very same
embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trivec.inference import Embedder, EncodeResult
from trivec.inference.batching import distinct_texts


def precision(embedder: Embedder) -> str:
    """How the encoder computes: the torch weights' dtype (`float32`, `bfloat16`), or `onnx <graph file>` on
    the ONNX backend (e.g. `onnx model_int8.onnx`), so results of different graphs are told apart."""
    if embedder.backend != "torch":
        path = getattr(embedder._forward, "path", None)
        return f"{embedder.backend} {path.name}" if path is not None else embedder.backend
    return str(next(embedder.model.parameters()).dtype).removeprefix("torch.")


def describe_model(embedder: Embedder, name: str | None = None) -> dict[str, Any]:
    """What identifies the model in a results file."""
    model = embedder.model
    return {
        "name": name or model.source or type(model.backbone).__name__,
        "source": model.source,
        "architecture": type(model.backbone).__name__,
        "hidden_size": model.hidden_size,
        "pooling": model.pooling,
        "normalize": model.normalize,
        "max_length": model.max_length,
        "heads": embedder.available_modes(),
        "dtype": precision(embedder),
        "backend": embedder.backend,
        "device": str(embedder.device),
        "prompts": dict(embedder.prompts),
        "default_prompt_name": embedder.default_prompt_name,
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }


class TextEncoder:
    """Encode evaluation texts with an `Embedder`: duplicates once, results in input order."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        max_length: int | None = None,
        batch_tokens: int | None = None,
        progress: bool = False,
        record: bool = False,
    ) -> None:
        self.embedder = embedder
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.progress = progress
        self.recorded: dict[tuple[str, str], np.ndarray] | None = {} if record else None
        self.texts_encoded = 0
        self.tokens_encoded = 0

    @property
    def has_sparse(self) -> bool:
        return self.embedder.has_sparse

    @property
    def has_colbert(self) -> bool:
        return self.embedder.has_colbert

    def encode(
        self,
        texts: Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
    ) -> EncodeResult:
        """The asked-for outputs of `texts` (prompts as `Embedder.encode` applies them); each distinct text runs
        once."""
        unique, index = distinct_texts(texts)
        if not unique:
            return EncodeResult(
                dense=np.zeros((0, self.embedder.model.hidden_size), np.float32) if dense else None,
                sparse=[] if sparse else None,
                colbert=[] if colbert else None,
            )
        out = self.embedder.encode(
            unique,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            prompt_name=prompt_name,
            prompt=prompt,
            max_length=self.max_length,
            batch_tokens=self.batch_tokens,
            show_progress=self.progress and len(unique) >= 256,
        )
        self.texts_encoded += len(unique)
        self.tokens_encoded += sum(out.num_tokens)
        if self.recorded is not None and out.dense is not None:
            role = prompt_name or "text"
            for text, vector in zip(unique, out.dense, strict=True):
                self.recorded[(role, text)] = vector
        return out.take(index)

    def dense(
        self, texts: Sequence[str], *, prompt_name: str | None = None, prompt: str | None = None
    ) -> np.ndarray:
        """Dense vectors `[N, D]` float32."""
        result = self.encode(texts, dense=True, prompt_name=prompt_name, prompt=prompt)
        assert result.dense is not None
        return result.dense
