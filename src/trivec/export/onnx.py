"""`export_onnx`: a complete model directory plus `onnx/model.onnx`, one graph with all of the model's outputs.

The directory is what `M3Model.save_pretrained` writes (config, weights, tokenizer, head files, the
sentence-transformers files with the prompts, `trivec_config.json`), so it still loads in torch, and
`onnx/model.onnx` is where sentence-transformers' `backend="onnx"` (optimum's `ORTModelForFeatureExtraction`)
looks. The graph:

- inputs `input_ids`, `attention_mask`: int64 `[batch, sequence]`, both axes dynamic, right padding;
- `last_hidden_state` `[batch, sequence, H]`: the encoder's states, what sentence-transformers / optimum
  read (they pool and normalise in their own modules), and what trivec's MCLS pools;
- `dense_vecs` `[batch, H]`: pooled as the model pools (cls / mean / last token), L2-normalised when the
  model normalises;
- `sparse_vecs` `[batch, sequence]`: ReLU(linear) token weights (≥ 0; padding included, as in torch);
- `colbert_vecs` `[batch, sequence − 1, D]`: normalised vectors of positions 1…, padding rows zeroed;

only the outputs whose heads the model has (a dense-only model: `last_hidden_state` and `dense_vecs`).
Metadata (`trivec.*` keys) records the outputs, pooling, normalisation and sizes, so the ONNX backend knows
which outputs it may take from the graph. `quantize="int8"` adds `onnx/model_int8.onnx`: onnxruntime's
dynamic quantisation (int8 weights of the MatMuls, activations quantised at run time).

BERT-family encoders are traced with transformers' eager attention (`eager_attention`), not its SDPA: the
SDPA trace masks the scores with `Where` and zeroes fully masked rows with `IsNaN` / `Where`, passes over
every `[batch, heads, L, L]` score tensor that took a third of the int8 graph's time on all-MiniLM-L6-v2;
eager adds a `[batch, 1, 1, L]` mask. The maths is the same (≤ 1e-6 to torch). onnxruntime's transformer
optimiser (fused `Attention` / `QAttention`, SkipLayerNorm, BiasGelu before quantising) was measured too and
was slower on the CPU than the graph as traced, which onnxruntime fuses itself when it loads it
(`DynamicQuantizeMatMul`, `SkipLayerNormalization`, `Gelu`): the graphs keep plain ONNX ops, which other
runtimes read too. Speeds: docs/benchmarks/encode.md.

Everything is written to a staging directory beside the target and renamed into place when complete and
checked (the graph runs in onnxruntime and matches torch): a failed export leaves nothing behind.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trivec.errors import InputError, TrivecError, UnsupportedOutputError
from trivec.inference.onnx_backend import (
    ATTENTION_MASK,
    EXPORT_FORMAT,
    HIDDEN_OUTPUT,
    INPUT_IDS,
    META_COLBERT_DIM,
    META_FORMAT,
    META_HIDDEN_SIZE,
    META_NORMALIZE,
    META_OUTPUTS,
    META_POOLING,
    META_VERSION,
    ONNX_DIR,
    ONNX_FILE,
    ONNX_INT8_FILE,
    OUTPUT_NAMES,
    onnx_session,
)
from trivec.io import staged_directory
from trivec.models.checkpoint import quiet_loading
from trivec.models.lora import merged_copy
from trivec.models.m3 import M3Model
from trivec.models.pooling import PoolingMode

DEFAULT_OPSET = 17  # LayerNormalization is an ONNX op from 17; onnxruntime ≥ 1.11 runs it
MIN_OPSET = 14  # scaled_dot_product_attention exports from 14
MAX_OPSET = 20  # the highest the TorchScript exporter of torch 2.13 writes
QUANTIZE_CHOICES = ("int8",)
OUTPUT_KINDS = ("dense", "sparse", "colbert")
PROTOBUF_LIMIT = 2_000_000_000  # a graph larger than this keeps its weights in model.onnx_data
CHECK_TOLERANCE = 1e-3  # export check: the graph's outputs vs torch's on a probe batch (float32: ~1e-6)
# encoders traced with eager attention (`eager_attention`): the families measured (BERT, RoBERTa, XLM-R
# layers); others (decoders with their causal masks) are traced with the attention they load with
EAGER_TRACE_FAMILIES = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})
PROBE_TEXTS = ("ONNX export check: a longer sentence, with several more tokens than the other.", "short")


class ExportError(TrivecError):
    """The model could not be exported, or the exported graph does not reproduce it."""


def check_opset(opset: object) -> int:
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(
            f"opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}",
            cli=f"--opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}",
        )
    return opset


def check_quantize(quantize: object) -> str | None:
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise InputError(
            f"quantize must be one of {', '.join(QUANTIZE_CHOICES)} (or None), got {quantize!r}",
            cli=f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}",
        )
    return quantize


def parse_outputs(outputs: str | Sequence[str] | None) -> list[str] | None:
    """`"dense,sparse"` or `["dense", "sparse"]` → a checked list in dense, sparse, colbert order."""
    if outputs is None:
        return None
    items = [x.strip() for x in outputs.split(",")] if isinstance(outputs, str) else list(outputs)
    unknown = [x for x in items if x not in OUTPUT_KINDS]
    if unknown or not items:
        raise InputError(
            f"outputs must name some of {', '.join(OUTPUT_KINDS)}, got {','.join(map(str, items))!r}",
            cli=f"--outputs must name some of {', '.join(OUTPUT_KINDS)}, got {','.join(map(str, items))!r}",
        )
    return [k for k in OUTPUT_KINDS if k in items]


def choose_outputs(model: M3Model, outputs: str | Sequence[str] | None) -> list[str]:
    """The outputs to export: those asked for (dense always), by default all the model has heads for."""
    asked = parse_outputs(outputs)
    if asked is None:
        return (
            ["dense"] + (["sparse"] if model.has_sparse else []) + (["colbert"] if model.has_colbert else [])
        )
    missing = [
        k
        for k in asked
        if (k == "sparse" and not model.has_sparse) or (k == "colbert" and not model.has_colbert)
    ]
    if missing:
        raise UnsupportedOutputError(
            f"model {model.source or ''} has no {' or '.join(missing)} head, so it cannot export "
            f"{' or '.join(missing)} output (a dense-only model exports dense only)"
        )
    return ["dense", *[k for k in asked if k != "dense"]]


class ExportGraph(nn.Module):
    """What the ONNX graph computes: the encoder once, then pooling and the heads as `M3Model.forward` does
    for a right-padded batch (the attention mask is always applied, so one graph serves every batch)."""

    def __init__(self, model: M3Model, outputs: Sequence[str]) -> None:
        super().__init__()
        self.backbone = merged_copy(model.backbone)
        self.pooling: PoolingMode = model.pooling
        self.normalize = bool(model.normalize)
        self.sparse_head = model.sparse_head if "sparse" in outputs else None
        self.colbert_head = model.colbert_head if "colbert" in outputs else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        else:  # last token: each row's last real position (right padding)
            last = attention_mask.sum(dim=1) - 1
            pooled = hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)
        dense = F.normalize(pooled, dim=-1) if self.normalize else pooled
        out = [hidden, dense]
        if self.sparse_head is not None:
            out.append(self.sparse_head(hidden))
        if self.colbert_head is not None:
            vectors = self.colbert_head(hidden[:, 1:], normalize=True)
            out.append(vectors * attention_mask[:, 1:].unsqueeze(-1).to(vectors.dtype))
        return tuple(out)


@contextmanager
def eager_attention(backbone: nn.Module) -> Iterator[None]:
    """Within the block a backbone of `EAGER_TRACE_FAMILIES` computes attention the eager way, the trace
    onnxruntime runs fastest (see the module doc); the implementation it had is restored after (the backbone
    may be the caller's own model). Any other backbone is left as it is."""
    config = getattr(backbone, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = getattr(backbone, "set_attn_implementation", None)
    family = getattr(config, "model_type", None)
    if switch is None or before in (None, "eager") or family not in EAGER_TRACE_FAMILIES:
        yield
        return
    switch("eager")
    try:
        yield
    finally:
        switch(before)


def graph_output_names(outputs: Sequence[str]) -> list[str]:
    return [HIDDEN_OUTPUT, *(OUTPUT_NAMES[k] for k in OUTPUT_KINDS if k in outputs)]


def _probe(model: M3Model) -> tuple[torch.Tensor, torch.Tensor]:
    """A two-row batch with padding (so the traced graph keeps the attention mask)."""
    tokenizer = model.tokenizer
    rows = [
        tokenizer(text, add_special_tokens=True, truncation=True, max_length=min(64, model.max_length))[
            "input_ids"
        ]
        for text in PROBE_TEXTS
    ]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[i, : len(ids)] = 1
    return input_ids, attention_mask


def _float32_model(model: M3Model) -> M3Model:
    """`model` on the CPU in float32 in eval mode: the model itself when it already is, else a copy."""
    params = list(model.parameters())
    if all(p.dtype == torch.float32 and p.device.type == "cpu" for p in params) and not model.training:
        return model
    return copy.deepcopy(model).to("cpu", torch.float32).eval()


def trace_to_onnx(
    graph: ExportGraph,
    probe: tuple[torch.Tensor, torch.Tensor],
    path: Path,
    opset: int,
    outputs: Sequence[str],
) -> None:
    """torch's TorchScript ONNX exporter: dynamic batch and sequence axes on every input and output."""
    names = graph_output_names(outputs)
    axes: dict[str, dict[int, str]] = {
        INPUT_IDS: {0: "batch", 1: "sequence"},
        ATTENTION_MASK: {0: "batch", 1: "sequence"},
        HIDDEN_OUTPUT: {0: "batch", 1: "sequence"},
        OUTPUT_NAMES["dense"]: {0: "batch"},
        OUTPUT_NAMES["sparse"]: {0: "batch", 1: "sequence"},
        OUTPUT_NAMES["colbert"]: {0: "batch", 1: "sequence_after_first"},
    }
    graph.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-only branches, the exporter's notices
        torch.onnx.export(
            graph,
            probe,
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_IDS, ATTENTION_MASK],
            output_names=names,
            dynamic_axes={name: axes[name] for name in [INPUT_IDS, ATTENTION_MASK, *names]},
            do_constant_folding=True,
        )


def output_shapes(model: M3Model, outputs: Sequence[str]) -> dict[str, list[str | int]]:
    """The declared shape of each output (the tracer leaves some sizes as expressions)."""
    hidden = model.hidden_size
    shapes: dict[str, list[str | int]] = {
        HIDDEN_OUTPUT: ["batch", "sequence", hidden],
        OUTPUT_NAMES["dense"]: ["batch", hidden],
        OUTPUT_NAMES["sparse"]: ["batch", "sequence"],
    }
    if "colbert" in outputs and model.colbert_head is not None:
        shapes[OUTPUT_NAMES["colbert"]] = ["batch", "sequence_after_first", model.colbert_head.out_features]
    return shapes


def _finish_graph(
    raw: Path,
    target: Path,
    metadata: dict[str, str],
    shapes: dict[str, list[str | int]],
    limit: int = PROTOBUF_LIMIT,
) -> None:
    """Write the traced graph to `target` with trivec's metadata and the outputs' declared shapes; weights
    go to `<target>_data` (one file) when the graph is larger than protobuf's 2 GB."""
    import onnx

    proto = onnx.load(str(raw))  # reads external weights too (the exporter splits graphs over 2 GB)
    for output in proto.graph.output:
        if output.name in shapes:
            shape = output.type.tensor_type.shape
            del shape.dim[:]
            for size in shapes[output.name]:
                dim = shape.dim.add()
                if isinstance(size, int):
                    dim.dim_value = size
                else:
                    dim.dim_param = size
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "trivec"
    size = sum(t.ByteSize() for t in proto.graph.initializer)
    if size > limit:
        onnx.save_model(
            proto,
            str(target),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=target.name + "_data",
            size_threshold=1024,
        )
    else:
        onnx.save_model(proto, str(target))


def _check_graph(
    path: Path, model: M3Model, probe: tuple[torch.Tensor, torch.Tensor], outputs: Sequence[str]
) -> None:
    """The exported graph runs in onnxruntime and gives torch's outputs on the probe batch."""
    session = onnx_session(path, threads=1)
    input_ids, attention_mask = probe
    names = [OUTPUT_NAMES[k] for k in OUTPUT_KINDS if k in outputs]
    got = dict(
        zip(
            names,
            session.run(names, {INPUT_IDS: input_ids.numpy(), ATTENTION_MASK: attention_mask.numpy()}),
            strict=True,
        )
    )
    with torch.no_grad():
        ref = model(
            input_ids, attention_mask, dense=True, sparse="sparse" in outputs, colbert="colbert" in outputs
        )
    reference = {"dense": ref.dense, "sparse": ref.token_weights, "colbert": ref.colbert}
    for kind in outputs:
        expected = reference[kind]
        assert expected is not None
        mask = attention_mask if kind == "sparse" else None
        value, want = np.asarray(got[OUTPUT_NAMES[kind]]), expected.float().numpy()
        if mask is not None:  # padding positions' weights are not outputs anyone reads
            value, want = value * mask.numpy(), want * mask.numpy()
        if value.shape != want.shape or not np.isfinite(value).all():
            raise ExportError(
                f"{path}: the graph's {kind} output has shape {value.shape}, torch's {want.shape}"
            )
        diff = float(np.abs(value - want).max())
        if diff > CHECK_TOLERANCE:
            raise ExportError(
                f"{path}: the exported graph's {kind} output differs from torch's by {diff:.2e} "
                f"(> {CHECK_TOLERANCE:g}): this encoder does not export faithfully"
            )


def quantize_int8(source: Path, target: Path) -> None:
    """onnxruntime's dynamic quantisation: int8 weights per output channel (MatMul and the embedding
    Gather), activations quantised at run time. Per channel matters: on all-MiniLM-L6-v2 the mean dense
    cosine to float32 is 0.993 per channel, 0.969 per tensor."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = (source.parent / (source.name + "_data")).is_file()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice ("consider pre-processing") on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                model_input=str(source),
                model_output=str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                use_external_data_format=external,
            )
    finally:
        root.setLevel(level)


def _check_int8(path: Path, probe: tuple[torch.Tensor, torch.Tensor], outputs: Sequence[str]) -> None:
    """The int8 graph loads and gives finite outputs of the right shapes."""
    session = onnx_session(path, threads=1)
    input_ids, attention_mask = probe
    names = [OUTPUT_NAMES[k] for k in OUTPUT_KINDS if k in outputs]
    for name, value in zip(
        names,
        session.run(names, {INPUT_IDS: input_ids.numpy(), ATTENTION_MASK: attention_mask.numpy()}),
        strict=True,
    ):
        if not np.isfinite(np.asarray(value)).all():
            raise ExportError(f"{path}: the int8 graph's {name} output is not finite")


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, or a non-empty directory unless `overwrite`."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file; the export writes a model directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InputError(
            f"{target} exists and is not empty (overwrite=True replaces it)",
            cli=f"{target} exists and is not empty (--overwrite replaces it)",
        )


def export_onnx(
    model: M3Model | str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    outputs: str | Sequence[str] | None = None,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Write `output`: the model directory (`M3Model.save_pretrained`) + `onnx/model.onnx` (+ `onnx/
    model_int8.onnx` with `quantize="int8"`). `outputs`: which of dense, sparse, colbert the graph computes
    (default: all the model has heads for; asking for a head the model lacks is an error). Returns `output`."""
    target = Path(output)
    check_opset(opset)
    check_quantize(quantize)
    parse_outputs(outputs)
    check_target(target, overwrite)
    loaded = model if isinstance(model, M3Model) else M3Model.from_pretrained(model)
    kinds = choose_outputs(loaded, outputs)
    source = _float32_model(loaded)
    # checked again before the rename: the target may have appeared while the graph was traced
    with staged_directory(target, "export", lambda: check_target(target, overwrite)) as staging:
        with quiet_loading():  # no "Writing model shards" bar
            source.save_pretrained(staging)
        onnx_dir = staging / ONNX_DIR
        scratch = staging / ".trace"
        onnx_dir.mkdir()
        scratch.mkdir()
        probe = _probe(source)
        graph = ExportGraph(source, kinds)
        try:
            with eager_attention(graph.backbone):
                trace_to_onnx(graph, probe, scratch / ONNX_FILE, opset, kinds)
        except TrivecError:
            raise
        except Exception as exc:
            raise ExportError(
                f"cannot export {source.source or 'the model'} to ONNX: {str(exc).strip().splitlines()[0][:300]}"
            ) from exc
        import trivec

        metadata = {
            META_OUTPUTS: ",".join(kinds),
            META_POOLING: source.pooling,
            META_NORMALIZE: str(bool(source.normalize)).lower(),
            META_HIDDEN_SIZE: str(source.hidden_size),
            META_VERSION: trivec.__version__,
            META_FORMAT: str(EXPORT_FORMAT),
        }
        if "colbert" in kinds and source.colbert_head is not None:
            metadata[META_COLBERT_DIM] = str(source.colbert_head.out_features)
        _finish_graph(scratch / ONNX_FILE, onnx_dir / ONNX_FILE, metadata, output_shapes(source, kinds))
        shutil.rmtree(scratch)
        _check_graph(onnx_dir / ONNX_FILE, source, probe, kinds)
        if quantize == "int8":
            quantize_int8(onnx_dir / ONNX_FILE, onnx_dir / ONNX_INT8_FILE)
            _check_int8(onnx_dir / ONNX_INT8_FILE, probe, kinds)
    return target


__all__ = [
    "DEFAULT_OPSET",
    "ExportError",
    "ExportGraph",
    "check_opset",
    "check_quantize",
    "choose_outputs",
    "eager_attention",
    "export_onnx",
    "parse_outputs",
    "quantize_int8",
]
