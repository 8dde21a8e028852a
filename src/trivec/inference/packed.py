"""Inference forward on packed (unpadded) tokens for BERT-family encoders, and the M3 heads on top of it.

A padded batch wastes work on its padding in every matmul, layer norm and activation. Here the token states
of a batch live in one `[N, H]` matrix of real tokens (N = total tokens); only attention sees the batch
padded, as a strided view with a key-padding mask (`[B, 1, 1, L]`, no `L×L` mask is built). Q, K and V come
from one fused matmul. The maths is that of the Hugging Face module (post-LN BERT / RoBERTa / XLM-R layers,
its own weights, activation and attention scaling), so outputs equal the padded forward within float
rounding; encoders of another shape fall back to `M3Model.forward`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trivec.models.m3 import M3Model

PACKED_MODEL_TYPES = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})


@dataclass
class PackedOutput:
    """Outputs of one batch, rows in batch order.

    dense: `[B, H]`; token_weights: `[N]` for every real token (offsets give each text's span);
    colbert: `[N − B, D]` vectors of every real token after each text's first one.
    """

    offsets: list[int]
    dense: torch.Tensor | None = None
    token_weights: torch.Tensor | None = None
    colbert: torch.Tensor | None = None


@dataclass
class _Layer:
    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    heads: int
    scaling: float | None
    attn_out: nn.Linear
    attn_norm: nn.LayerNorm
    ffn_in: nn.Linear
    act_: Callable[[torch.Tensor], torch.Tensor]  # in place where the activation allows it
    ffn_out: nn.Linear
    ffn_norm: nn.LayerNorm


@dataclass
class _BatchShape:
    """Where a batch's packed rows sit in its padded `[batch, width]` grid (`rows` None: no padding)."""

    batch: int
    width: int
    rows: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None


class _Workspace:
    """Flat buffers reused across layers and batches, grown on demand, views handed out by name."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
        need = rows * cols
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < need
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = torch.empty(need, dtype=like.dtype, device=like.device)
            self._buffers[name] = buffer
        return buffer[:need].view(rows, cols)

    def clear(self) -> None:
        self._buffers.clear()


def _inplace(activation: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The exact-erf GELU of BERT-family models in place; any other activation as the module computes it."""
    function = getattr(activation, "act", None) if type(activation).__name__ == "GELUActivation" else None
    if function is F.gelu or (isinstance(activation, nn.GELU) and activation.approximate == "none"):
        return getattr(torch._C._nn, "gelu_")  # noqa: B009 (private, untyped binding)
    return activation


def _packable(backbone: nn.Module) -> bool:
    config = getattr(backbone, "config", None)
    if config is None or getattr(config, "model_type", None) not in PACKED_MODEL_TYPES:
        return False
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return False
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if getattr(backbone, "embeddings", None) is None or not layers:
        return False
    try:
        for layer in layers:
            attention = layer.attention
            linears = (
                attention.self.query,
                attention.self.key,
                attention.self.value,
                attention.output.dense,
                layer.intermediate.dense,
                layer.output.dense,
            )
            if any(not isinstance(linear, nn.Linear) or linear.bias is None for linear in linears):
                return False
            if getattr(attention.self, "is_causal", False):
                return False
            if not isinstance(attention.output.LayerNorm, nn.LayerNorm) or not isinstance(
                layer.output.LayerNorm, nn.LayerNorm
            ):
                return False
            layer.intermediate.intermediate_act_fn  # noqa: B018
    except AttributeError:
        return False
    return True


class PackedEncoder:
    """Runs `model.backbone` on packed tokens and applies `model`'s pooling and heads.

    Use `PackedEncoder.for_model(model)`: it returns None when the backbone is not a plain post-LN encoder
    this class knows. The fused Q/K/V weights are copies, rebuilt whenever a Q/K/V parameter has changed
    (in-place update, new tensor, device or dtype), so a model that keeps training stays in step.
    """

    def __init__(self, model: M3Model) -> None:
        self.model = model
        self.backbone: Any = model.backbone
        self.pad_id = int(getattr(model.backbone.config, "pad_token_id", 0) or 0)
        self._stamp: tuple = ()
        self._workspace = _Workspace()
        self.layers: list[_Layer] = []
        self._sync()

    def _qkv_params(self) -> list[torch.Tensor]:
        return [
            p
            for layer in self.backbone.encoder.layer
            for linear in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value)
            for p in (linear.weight, linear.bias)
        ]

    def _sync(self) -> None:
        """(Re)build the fused Q/K/V weights when any Q/K/V parameter differs from the last build."""
        stamp = tuple((p.data_ptr(), _version(p), p.dtype, p.device) for p in self._qkv_params())
        if stamp != self._stamp:
            heads = int(self.backbone.config.num_attention_heads)
            self.layers = [self._layer(layer, heads) for layer in self.backbone.encoder.layer]
            self._stamp = stamp

    @classmethod
    def for_model(cls, model: M3Model) -> PackedEncoder | None:
        return cls(model) if _packable(model.backbone) else None

    @staticmethod
    def _layer(layer: Any, heads: int) -> _Layer:
        attention = layer.attention.self
        q, k, v = attention.query, attention.key, attention.value
        with torch.no_grad():
            weight = torch.cat([q.weight, k.weight, v.weight], dim=0).detach()
            bias = torch.cat([q.bias, k.bias, v.bias], dim=0).detach()
        return _Layer(
            qkv_weight=weight,
            qkv_bias=bias,
            heads=heads,
            scaling=getattr(attention, "scaling", None),
            attn_out=layer.attention.output.dense,
            attn_norm=layer.attention.output.LayerNorm,
            ffn_in=layer.intermediate.dense,
            act_=_inplace(layer.intermediate.intermediate_act_fn),
            ffn_out=layer.output.dense,
            ffn_norm=layer.output.LayerNorm,
        )

    # ------------------------------------------------------------------ encoder
    def hidden_states(self, rows: list[list[int]], device: torch.device) -> tuple[torch.Tensor, list[int]]:
        """Last hidden states `[N, H]` of the texts' real tokens, concatenated, and the span offsets."""
        self._sync()
        lengths = [len(r) for r in rows]
        width = max(lengths)
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        uniform = all(n == width for n in lengths)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
        input_ids = input_ids.to(device)
        # The module's own embeddings (word + position + type, layer norm): its position rules stay exact.
        embedded = self.backbone.embeddings(input_ids=input_ids)
        flat = embedded.reshape(-1, embedded.shape[-1])
        shape = _BatchShape(batch=len(rows), width=width)
        if uniform:
            hidden = flat
        else:
            length_t = torch.as_tensor(lengths, device=device)
            keep = torch.arange(width, device=device).unsqueeze(0) < length_t.unsqueeze(1)
            shape.rows = keep.reshape(-1).nonzero().squeeze(1)
            shape.key_mask = keep[:, None, None, :]
            hidden = flat.index_select(0, shape.rows)
            # padding rows of Q/K/V stay zero for the whole batch: each layer writes only the real rows
            self._workspace.get("padded", shape.batch * width, 3 * flat.shape[-1], flat).zero_()
        for layer in self.layers:
            hidden = self._layer_forward(layer, hidden, shape)
        return hidden, offsets

    def release(self) -> None:
        """Free the reusable work buffers (they are kept between the batches of one `encode` call)."""
        self._workspace.clear()

    def _layer_forward(self, layer: _Layer, hidden: torch.Tensor, shape: _BatchShape) -> torch.Tensor:
        """One post-LN layer on packed rows; big intermediates go to reused buffers (no page faults per op)."""
        n, size = hidden.shape
        head_dim = size // layer.heads
        space = self._workspace
        qkv = space.get("qkv", n, 3 * size, hidden)
        torch.addmm(layer.qkv_bias, hidden, layer.qkv_weight.t(), out=qkv)
        if shape.rows is not None:
            padded = space.get("padded", shape.batch * shape.width, 3 * size, hidden)
            padded.index_copy_(0, shape.rows, qkv)
            qkv = padded
        qkv = qkv.view(shape.batch, shape.width, 3, layer.heads, head_dim)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=shape.key_mask, scale=layer.scaling)
        context = context.transpose(1, 2).reshape(shape.batch * shape.width, size)
        if shape.rows is not None:
            context = torch.index_select(context, 0, shape.rows, out=space.get("context", n, size, hidden))
        projected = space.get("projected", n, size, hidden)
        torch.addmm(layer.attn_out.bias, context, layer.attn_out.weight.t(), out=projected)
        hidden = layer.attn_norm(projected.add_(hidden))
        inner = space.get("inner", n, layer.ffn_in.out_features, hidden)
        torch.addmm(layer.ffn_in.bias, hidden, layer.ffn_in.weight.t(), out=inner)
        inner = layer.act_(inner)
        torch.addmm(layer.ffn_out.bias, inner, layer.ffn_out.weight.t(), out=projected)
        return layer.ffn_norm(projected.add_(hidden))

    # ------------------------------------------------------------------ heads
    def __call__(
        self,
        rows: list[list[int]],
        device: torch.device,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        cls_slots: list[list[int]] | None = None,
    ) -> PackedOutput:
        model = self.model
        model.require(sparse=sparse, colbert=colbert)
        hidden, offsets = self.hidden_states(rows, device)
        out = PackedOutput(offsets=offsets)
        starts = torch.as_tensor(offsets[:-1], device=device)
        lengths = torch.as_tensor([len(r) for r in rows], device=device)
        if dense:
            pooled = self._pool(hidden, starts, lengths, cls_slots)
            out.dense = F.normalize(pooled, dim=-1) if model.normalize else pooled
        if sparse:
            assert model.sparse_head is not None
            out.token_weights = model.sparse_head(hidden)
        if colbert:
            assert model.colbert_head is not None
            after_first = torch.ones(hidden.shape[0], dtype=torch.bool, device=device)
            after_first[starts] = False
            out.colbert = model.colbert_head(hidden[after_first], normalize=True)
        return out

    def _pool(
        self,
        hidden: torch.Tensor,
        starts: torch.Tensor,
        lengths: torch.Tensor,
        cls_slots: list[list[int]] | None,
    ) -> torch.Tensor:
        if cls_slots is not None:
            positions = torch.as_tensor(
                [int(s) + p for s, slots in zip(starts.tolist(), cls_slots, strict=True) for p in slots],
                device=hidden.device,
            )
            owner = torch.repeat_interleave(
                torch.arange(len(cls_slots), device=hidden.device),
                torch.as_tensor([len(s) for s in cls_slots], device=hidden.device),
            )
            counts = torch.as_tensor([len(s) for s in cls_slots], device=hidden.device).clamp(min=1)
            return _segment_mean(hidden[positions], owner, counts)
        mode = self.model.pooling
        if mode == "cls":
            return hidden[starts]
        if mode == "last_token":
            return hidden[starts + lengths - 1]
        owner = torch.repeat_interleave(torch.arange(len(starts), device=hidden.device), lengths)
        return _segment_mean(hidden, owner, lengths)


def _version(tensor: torch.Tensor) -> int:
    try:
        return int(tensor._version)
    except RuntimeError:  # inference tensors carry no version counter (and cannot be changed in place)
        return 0


def _segment_mean(rows: torch.Tensor, owner: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of `rows` per owner index, summed in float32 whatever the model's dtype."""
    total = torch.zeros(counts.shape[0], rows.shape[-1], dtype=torch.float32, device=rows.device)
    total.index_add_(0, owner, rows.float())
    return (total / counts.unsqueeze(-1).float()).to(rows.dtype)
