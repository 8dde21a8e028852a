"""Hidden states: the token vectors of any layer of the encoder (`Embedder.encode(..., hidden_states=True,
layer=k)`, `trivec encode --layer k`).

Layers are numbered as transformers' `output_hidden_states` numbers them: 0 is the embeddings' output, `k`
the output of the k-th transformer layer, `num_hidden_layers` (or -1) the last one — the states the heads
read. Every token is kept, special tokens included, so row `t` of a text is its token `t`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trivec.errors import InputError, UnsupportedOutputError

if TYPE_CHECKING:
    from trivec.inference.encoder import Embedder


def num_layers(model: Any) -> int:
    """Transformer layers of an `M3Model`'s backbone (its config's `num_hidden_layers`)."""
    return int(model.backbone.config.num_hidden_layers)


def check_layer(layer: Any, layers: int) -> int:
    """`layer` as an index into the `layers + 1` hidden states (negative counts from the end)."""
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise InputError(
            f"layer must be an integer, got {layer!r}", cli=f"--layer must be an integer, got {layer!r}"
        )
    if not -(layers + 1) <= layer <= layers:
        message = (
            f"layer {layer} is out of range: the model has {layers} layers (0 = the embeddings' output … "
            f"{layers} = the last; negative counts from the end)"
        )
        raise InputError(message, cli="--" + message)
    return layer % (layers + 1)


def layer_states(
    embedder: Embedder, ids: list[list[int]], layer: int, batch_tokens: int | None = None
) -> list[np.ndarray]:
    """Float32 `[T_i, H]` states of layer `layer` for each tokenised text, in input order."""
    if embedder.backend != "torch":
        raise UnsupportedOutputError(
            "hidden states need the torch backend: the ONNX graph returns the last layer only",
            cli="--layer needs --backend torch: the ONNX graph returns the last layer only",
        )
    index = check_layer(layer, num_layers(embedder.model))
    out: list[np.ndarray | None] = [None] * len(ids)
    _, batches = embedder.batch_plan([len(x) for x in ids], batch_tokens)
    with torch.inference_mode():
        for batch in batches:
            input_ids, attention_mask = embedder._pad([ids[i] for i in batch])
            states = embedder.model.backbone(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states[index]
            values = states.float().cpu().numpy()
            for row, i in enumerate(batch):
                out[i] = np.ascontiguousarray(values[row, : len(ids[i])])
    return [x for x in out if x is not None]
