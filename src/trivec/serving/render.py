"""The bodies of the embedding answers: OpenAI's `/v1/embeddings` list and `/encode`'s three outputs, as
JSON bytes (floats or base64), with their token usage."""

from __future__ import annotations

from typing import Any

import numpy as np

from trivec.inference import EncodeResult
from trivec.serving.schemas import EncodeRequest
from trivec.serving.state import ServingState
from trivec.serving.wire import array, b64, dumps
from trivec.vectors import unit_rows


def usage(tokens: int) -> dict[str, int]:
    """OpenAI's `usage` object: the tokens encoded (prompt and total are the same for embeddings)."""
    return {"prompt_tokens": int(tokens), "total_tokens": int(tokens)}


def render_embeddings(
    vectors: np.ndarray,
    encoding_format: str,
    model: str,
    tokens: int,
    dimensions: int | None,
    normalize: bool,
) -> bytes:
    """OpenAI's embeddings response; `dimensions` truncates, then re-normalises when the model normalises."""
    if dimensions is not None and dimensions < vectors.shape[1]:
        vectors = vectors[:, :dimensions]
        if normalize:
            vectors = unit_rows(vectors)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": b64(row) if encoding_format == "base64" else array(row),
        }
        for i, row in enumerate(vectors.astype(np.float32, copy=False))
    ]
    return dumps({"object": "list", "data": data, "model": model, "usage": usage(tokens)})


def render_encode(state: ServingState, req: EncodeRequest, result: EncodeResult) -> bytes:
    """`/encode`'s answer: per text the outputs it asked for (sparse as indices and weights, with the tokens
    when `sparse_tokens`), the output dimensions and the usage."""
    base64_out = req.encoding_format == "base64"
    data: list[dict[str, Any]] = []
    for i in range(len(result)):
        item: dict[str, Any] = {"index": i, "num_tokens": result.num_tokens[i]}
        if result.dense is not None:
            row = result.dense[i]
            item["dense"] = b64(row) if base64_out else array(row)
        if result.sparse is not None:
            vector = result.sparse[i]
            sparse: dict[str, Any] = {
                "indices": array(vector.indices, np.int32),
                "values": array(vector.values),
            }
            if req.sparse_tokens:
                sparse["tokens"] = state.embedder.tokenizer.convert_ids_to_tokens(vector.indices.tolist())
            item["sparse"] = sparse
        if result.colbert is not None:
            rows = result.colbert[i]
            item["colbert"] = b64(rows) if base64_out else array(rows)
        data.append(item)
    dims: dict[str, int] = {}
    if result.dense is not None:
        dims["dense"] = int(result.dense.shape[1])
    if result.colbert is not None and state.colbert_dim is not None:
        dims["colbert"] = state.colbert_dim
    payload = {
        "object": "list",
        "model": state.config.model_name,
        "encoding_format": req.encoding_format,
        "dims": dims,
        "data": data,
        "usage": usage(sum(result.num_tokens)),
    }
    return dumps(payload)
