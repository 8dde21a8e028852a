"""The onnxruntime backend of the `Embedder`: each batch runs through the graph `trivec export onnx` writes.

`Embedder.from_pretrained(DIR, backend="onnx")` loads the model directory as for torch (tokenizer, prompts,
pooling, heads: the model's description and an index's fingerprint come from it) and runs every batch
through `DIR/onnx/model.onnx` — or `onnx_file=` (`model_int8.onnx`: the int8 graph of `--quantize int8`) —
in onnxruntime. `OnnxForward` returns what `M3Model.forward` returns, so the rest of `encode` is shared.

The graph's own outputs (`dense_vecs`, `sparse_vecs`, `colbert_vecs`) are used when its metadata says trivec
computed them with the pooling and normalisation the model loads with; anything else (MCLS, a pooling
given at load time, an output the graph was exported without, a graph another exporter wrote with
`last_hidden_state` only) is computed from `last_hidden_state` by the model's own pooling and heads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trivec.errors import CheckpointError, InputError, UnsupportedOutputError
from trivec.models.m3 import M3Model, M3Output

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"  # where sentence-transformers (backend="onnx") and optimum look
ONNX_INT8_FILE = "model_int8.onnx"  # `--quantize int8`: dynamic int8 weights (onnxruntime.quantization)
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
TOKEN_TYPE_IDS = "token_type_ids"  # fed as zeros when a graph (another exporter's) asks for it
HIDDEN_OUTPUT = "last_hidden_state"
OUTPUT_NAMES = {"dense": "dense_vecs", "sparse": "sparse_vecs", "colbert": "colbert_vecs"}
# metadata_props `trivec export onnx` writes into the graph
META_OUTPUTS = "trivec.outputs"
META_POOLING = "trivec.pooling"
META_NORMALIZE = "trivec.normalize"
META_HIDDEN_SIZE = "trivec.hidden_size"
META_COLBERT_DIM = "trivec.colbert_dim"
META_VERSION = "trivec.version"
META_FORMAT = "trivec.export_format"  # `EXPORT_FORMAT` of the export that wrote the graph
# bumped when `trivec export onnx` writes a different graph for the same model (2: eager attention traced),
# so a cache of exports (benchmarks/encode.py) knows an old one
EXPORT_FORMAT = 2
# the CPU token budget of an ONNX encoder (torch's is `batching.CPU_BATCH_TOKENS`, 4,096): onnxruntime
# materialises every `[batch, heads, L, L]` attention tensor, and a small batch keeps them in cache (the int8
# graph of m3-small ran 1.8× faster at 1,024 than at 8,192; torch's speed does not change)
ONNX_CPU_BATCH_TOKENS = 1024


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # a dependency of trivec; missing only in a broken environment
        raise CheckpointError(
            f"the ONNX backend needs the onnxruntime package (pip install onnxruntime): {exc}"
        ) from exc
    return onnxruntime


def onnx_file_path(
    directory: str | os.PathLike[str], onnx_file: str | os.PathLike[str] | None = None
) -> Path:
    """The graph of a model directory: `onnx/model.onnx` by default; `onnx_file` a bare file name
    (`model_int8.onnx`) is looked for in `onnx/`, a path with a folder is taken relative to the directory."""
    base = Path(directory)
    if onnx_file is None:
        return base / ONNX_DIR / ONNX_FILE
    given = Path(onnx_file)
    if given.is_absolute():
        return given
    if len(given.parts) == 1:
        return base / ONNX_DIR / given
    return base / given


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def onnx_session(path: Path, device: torch.device | None = None, threads: int | None = None) -> Any:
    """An onnxruntime session of `path`: CPU, or CUDA when `device` is a CUDA device (onnxruntime-gpu)."""
    ort = import_onnxruntime()
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such file (`trivec export onnx --model MODEL --output DIR` writes DIR/{ONNX_DIR}/"
            f"{ONNX_FILE}; --quantize int8 adds {ONNX_INT8_FILE})"
        )
    providers = ["CPUExecutionProvider"]
    if device is not None and torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError(
                f"device {device}: this onnxruntime has no CUDA provider (install onnxruntime-gpu, or use the "
                "torch backend on the GPU)"
            )
        index = torch.device(device).index or 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]  # type: ignore[list-item]
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads if threads is not None else torch.get_num_threads())
    options.inter_op_num_threads = 1
    # every onnxruntime fusion (its default, said here: the int8 graph's speed rests on them); intra-op
    # threads spin between kernels (also its default: without, the int8 graph ran ~15 % slower)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # InvalidProtobuf, Fail, …: a damaged or foreign file
        raise CheckpointError(f"cannot load the ONNX graph {path}: {_first_line(exc)}") from exc


class OnnxForward:
    """`M3Model.forward` on an onnxruntime session; `model` supplies pooling, normalisation and the heads
    for whatever the graph does not compute itself (see the module doc)."""

    name = "onnx"

    def __init__(
        self,
        model: M3Model,
        path: str | os.PathLike[str],
        device: str | torch.device | None = None,
        threads: int | None = None,
    ) -> None:
        self.model = model
        self.path = Path(path)
        self.session = onnx_session(self.path, torch.device(device) if device is not None else None, threads)
        inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        missing = [name for name in (INPUT_IDS, ATTENTION_MASK) if name not in inputs]
        extra = sorted(inputs - {INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS})
        if missing or extra:
            raise CheckpointError(
                f"{self.path}: the graph's inputs are {', '.join(sorted(inputs))}; trivec feeds input_ids and "
                "attention_mask (and token_type_ids as zeros)"
            )
        self._token_types = TOKEN_TYPE_IDS in inputs
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self._check_metadata(meta)
        self.graph_outputs = self._trusted_outputs(meta)
        self.has_hidden = HIDDEN_OUTPUT in self.outputs
        if not self.has_hidden and "dense" not in self.graph_outputs:
            raise CheckpointError(
                f"{self.path}: the graph has neither {HIDDEN_OUTPUT} nor trivec's {OUTPUT_NAMES['dense']} "
                f"output (its outputs: {', '.join(self.outputs)}): export it with `trivec export onnx`"
            )

    # ------------------------------------------------------------------ checks
    def _check_metadata(self, meta: dict[str, str]) -> None:
        """A graph exported from another model (hidden size, ColBERT width) is refused."""
        checks = [(META_HIDDEN_SIZE, self.model.hidden_size, "hidden size")]
        if self.model.colbert_head is not None:
            checks.append((META_COLBERT_DIM, self.model.colbert_head.out_features, "ColBERT dimension"))
        for key, have, what in checks:
            if key in meta and meta[key] != str(have):
                raise CheckpointError(
                    f"{self.path} was exported from a model with {what} {meta[key]}, but the model directory's "
                    f"is {have}: export the graph again from this model"
                )

    def _trusted_outputs(self, meta: dict[str, str]) -> frozenset[str]:
        """Outputs of the graph trivec computed (its metadata says so) as the model computes them now."""
        listed = {x for x in meta.get(META_OUTPUTS, "").split(",") if x}
        present = {kind for kind, name in OUTPUT_NAMES.items() if kind in listed and name in self.outputs}
        same_dense = (
            meta.get(META_POOLING) == self.model.pooling
            and meta.get(META_NORMALIZE) == str(bool(self.model.normalize)).lower()
        )
        if not same_dense:
            present.discard("dense")
        if self.model.sparse_head is None:
            present.discard("sparse")
        if self.model.colbert_head is None:
            present.discard("colbert")
        return frozenset(present)

    def can(self, kind: str) -> bool:
        """Whether this backend gives output `kind` (dense, sparse, colbert)."""
        if kind in self.graph_outputs:
            return True
        if not self.has_hidden:
            return False
        return (
            kind == "dense"
            or (kind == "sparse" and self.model.has_sparse)
            or (kind == "colbert" and self.model.has_colbert)
        )

    def require(self, sparse: bool = False, colbert: bool = False) -> None:
        self.model.require(sparse=sparse, colbert=colbert)
        missing = [k for k, want in (("sparse", sparse), ("colbert", colbert)) if want and not self.can(k)]
        if missing:
            raise UnsupportedOutputError(
                f"{self.path} has no {' or '.join(missing)} output and no {HIDDEN_OUTPUT} to compute it from: "
                f"export the graph again with `trivec export onnx --outputs dense,sparse,colbert`"
            )

    # ------------------------------------------------------------------ forward
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        cls_slots: torch.Tensor | None = None,
    ) -> M3Output:
        self.require(sparse=sparse, colbert=colbert)
        if cls_slots is not None and dense and not self.has_hidden:
            raise UnsupportedOutputError(
                f"{self.path} has no {HIDDEN_OUTPUT} output: MCLS needs it (export the graph with "
                "`trivec export onnx`)"
            )
        wanted = [k for k, on in (("dense", dense), ("sparse", sparse), ("colbert", colbert)) if on]
        from_graph = [
            k for k in wanted if k in self.graph_outputs and not (k == "dense" and cls_slots is not None)
        ]
        need_hidden = len(from_graph) < len(wanted)
        names = [OUTPUT_NAMES[k] for k in from_graph] + ([HIDDEN_OUTPUT] if need_hidden else [])
        mask = attention_mask.detach().cpu().to(torch.int64)
        feed = {INPUT_IDS: input_ids.detach().cpu().to(torch.int64).numpy(), ATTENTION_MASK: mask.numpy()}
        if self._token_types:
            feed[TOKEN_TYPE_IDS] = np.zeros_like(feed[INPUT_IDS])
        try:
            values = dict(zip(names, self.session.run(names, feed), strict=True))
        except (
            Exception
        ) as exc:  # onnxruntime's own errors: out of memory, a graph that cannot run this shape
            raise CheckpointError(f"onnxruntime failed to run {self.path}: {_first_line(exc)}") from exc
        graph = {
            k: torch.from_numpy(np.asarray(values[OUTPUT_NAMES[k]], dtype=np.float32)) for k in from_graph
        }
        hidden = (
            torch.from_numpy(np.asarray(values[HIDDEN_OUTPUT], dtype=np.float32)) if need_hidden else None
        )
        missing = {
            k: on and k not in graph for k, on in (("dense", dense), ("sparse", sparse), ("colbert", colbert))
        }
        if any(missing.values()):  # computed from the hidden states by the model's own heads
            assert hidden is not None
            out = self.model.apply_heads(
                hidden,
                mask,
                missing["dense"],
                missing["sparse"],
                missing["colbert"],
                cls_slots.cpu() if cls_slots is not None else None,
            )
        else:
            out = M3Output()
        out.dense = graph.get("dense", out.dense)
        out.token_weights = graph.get("sparse", out.token_weights)
        out.colbert = graph.get("colbert", out.colbert)
        return out


def load_onnx_embedder(
    cls: Any,
    name_or_path: str | os.PathLike[str],
    *,
    onnx_file: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    batch_tokens: int | None = None,
    prompts: Any = None,
    default_prompt_name: str | None = None,
    **model_options: Any,
) -> Any:
    """`Embedder.from_pretrained(..., backend="onnx")`: the model directory loads in torch on the CPU (its
    tokenizer, prompts, pooling, heads and weights describe the model and fingerprint an index), and each
    batch runs through the ONNX graph. The graph is float32 (or int8 weights): `dtype` must be float32 or
    `auto` (which is float32 here: the graph runs as exported). On the CPU the token budget defaults to
    `ONNX_CPU_BATCH_TOKENS`."""
    if dtype not in (None, torch.float32, "float32", "fp32", "auto"):
        raise InputError(
            f"dtype {dtype} applies to the torch backend; the ONNX backend runs its graph as exported (float32, "
            f"or int8 weights with onnx_file={ONNX_INT8_FILE!r})",
            cli=f"--dtype {dtype} applies to --backend torch; the ONNX backend runs its graph as exported "
            f"(float32, or int8 weights with --onnx-file {ONNX_INT8_FILE})",
        )
    from trivec.models.checkpoint import resolve_model_path

    directory = resolve_model_path(name_or_path)
    path = onnx_file_path(directory, onnx_file)
    if not path.is_file():  # before the torch weights load
        onnx_session(path)
    model = M3Model.from_pretrained(name_or_path, dtype=torch.float32, **model_options)
    forward = OnnxForward(model, path, device=device)
    on_cpu = device is None or torch.device(device).type == "cpu"
    return cls(
        model,
        device="cpu",
        batch_tokens=ONNX_CPU_BATCH_TOKENS if batch_tokens is None and on_cpu else batch_tokens,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        forward=forward,
    )
