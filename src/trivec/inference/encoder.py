"""`Embedder`: tokenise, batch by token budget, run the encoder once, and return any subset of the outputs.

Texts are sorted by token length and packed into batches bounded by a token budget, so memory stays bounded
whatever the mix of lengths; results come back in input order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from trivec import heap
from trivec.errors import InputError
from trivec.inference.batching import default_batch_tokens, distinct_texts, plan_batches
from trivec.inference.choices import Backend, check_backend
from trivec.inference.devices import resolve_device
from trivec.inference.forward import BatchForward
from trivec.inference.hidden import layer_states
from trivec.inference.inputs import check_batch_tokens, split_pairs, text_list
from trivec.inference.packed import PackedEncoder
from trivec.inference.precision import check_dtype, limit_onednn_cache, resolve_dtype
from trivec.inference.results import EncodeResult
from trivec.inference.scoring import (
    dense_scores,
    lexical_score,
    lexical_scores,
    maxsim,
    maxsim_scores,
    normalize_weights,
    with_hybrids,
)
from trivec.inference.spans import after_prompt, overlong
from trivec.inference.text_outputs import ColbertCoder, TextOutputs, insert_cls_slots
from trivec.models.casing import fold_capitals
from trivec.models.m3 import HeadsPolicy, M3Model
from trivec.models.pooling import PoolingMode
from trivec.models.prompts import DOCUMENT, QUERY, check_default_name, merge_prompts, select_prompt
from trivec.models.weights import FusionDefaults
from trivec.textcheck import check_text

if TYPE_CHECKING:
    from trivec.inference.pool import EncodePool


class Embedder:
    """Encode texts into dense, sparse and ColBERT outputs and score them.

    `prompts` (`{name: text}`) are put over the model's own prompts name by name (`""` removes one);
    `default_prompt_name` replaces the model's default prompt name. `encode` applies them as
    sentence-transformers does (`trivec.models.prompts`).

    `forward`: what runs each batch (`trivec.inference.forward`); None: the model in torch. The ONNX backend
    (`from_pretrained(..., backend="onnx")`) passes an `OnnxForward` and keeps the model on the CPU.
    """

    def __init__(
        self,
        model: M3Model,
        device: str | torch.device | None = None,
        batch_tokens: int | None = None,
        max_batch_size: int = 512,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        forward: BatchForward | None = None,
    ) -> None:
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            limit_onednn_cache()  # before the first matmul: oneDNN reads it once
        self.model = model.to(self.device).eval()
        self.tokenizer = model.tokenizer
        # token budget per forward pass; default per device (`batching.default_batch_tokens`)
        check_batch_tokens(batch_tokens)
        self.batch_tokens = batch_tokens if batch_tokens is not None else default_batch_tokens(self.device)
        self.max_batch_size = max_batch_size
        self.prompts: dict[str, str] = merge_prompts(model.prompts, prompts)
        self.default_prompt_name = check_default_name(
            default_prompt_name if default_prompt_name is not None else model.default_prompt_name,
            self.prompts,
            "default_prompt_name",
        )
        self._skip_ids = model.special_token_ids
        self._forward: BatchForward = forward if forward is not None else self.model
        self.backend: Backend = "torch" if forward is None else getattr(forward, "name", "onnx")
        # Unpadded fast path for BERT-family encoders in torch; None (the padded forward) otherwise.
        self._packed = PackedEncoder.for_model(self.model) if forward is None else None
        # `from_pretrained`'s arguments (what an `EncodePool` loads in each worker) and the open pool, if any
        self.source: dict[str, Any] | None = None
        self._pool: EncodePool | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = "default",
        *,
        heads: HeadsPolicy = "auto",
        pooling: PoolingMode | None = None,
        normalize: bool | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        batch_tokens: int | None = None,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
        backend: Backend = "torch",
        onnx_file: str | os.PathLike[str] | None = None,
    ) -> Embedder:
        """Load a model (directory, `default`, or hub id) ready to encode; fp32 unless `dtype` says otherwise.

        `dtype`: float32 (None: exact, the FlagEmbedding parity), bfloat16, float16, or `"auto"`: bfloat16 where
        the device runs it natively (CPUs with AMX / AVX512-BF16, CUDA GPUs from Ampere on), else float32
        (`trivec.inference.precision`). The ONNX backend runs its graph as exported: `auto` is float32 there.

        `prompts` / `default_prompt_name` override the model's (see the class doc).
        `backend="onnx"`: run the graph `trivec export onnx` wrote (`DIR/onnx/model.onnx`; `onnx_file` names
        another in `onnx/`, e.g. `model_int8.onnx`) in onnxruntime; same outputs and API as torch."""
        source = {k: v for k, v in locals().items() if k not in ("cls", "device")}
        check_dtype(dtype)
        if check_backend(backend, onnx_file) == "onnx":
            from trivec.inference.onnx_backend import load_onnx_embedder

            embedder = load_onnx_embedder(
                cls,
                name_or_path,
                onnx_file=onnx_file,
                heads=heads,
                pooling=pooling,
                normalize=normalize,
                device=device,
                dtype=dtype,
                batch_tokens=batch_tokens,
                prompts=prompts,
                default_prompt_name=default_prompt_name,
            )
            embedder.source = source
            return embedder
        target = resolve_device(device)
        model = M3Model.from_pretrained(
            name_or_path,
            heads=heads,
            pooling=pooling,
            normalize=normalize,
            dtype=resolve_dtype(dtype, target),
        )
        embedder = cls(
            model,
            device=device,
            batch_tokens=batch_tokens,
            prompts=prompts,
            default_prompt_name=default_prompt_name,
        )
        embedder.source = source
        return embedder

    def start_pool(
        self, workers: int | None = None, devices: str | Sequence[str] | None = None
    ) -> EncodePool:
        """Start `workers` processes (or one per device: `"cpu,cpu"`, `["cuda:0", "cuda:1"]`) that load this
        model; until the pool is closed, `encode` runs in them, with the same results (`trivec.inference.pool`)."""
        from trivec.inference.pool import EncodePool

        return EncodePool(self, workers, devices)

    # ------------------------------------------------------------------ properties
    @property
    def max_length(self) -> int:
        """Where texts are cut when no `max_length` is given (the model's `max_seq_length`, if it has one)."""
        return self.model.max_length

    @property
    def position_limit(self) -> int:
        """The longest `max_length` the model takes (its position table)."""
        return self.model.position_limit

    @property
    def has_sparse(self) -> bool:
        return self.model.has_sparse

    @property
    def has_colbert(self) -> bool:
        return self.model.has_colbert

    @property
    def fusion_weights(self) -> dict[str, float]:
        """The hybrid weights used when a call gives none: the model's own, else M3's 0.4 / 0.2 / 0.4."""
        return normalize_weights(None, self.model.fusion_weights)

    @property
    def fusion_defaults(self) -> FusionDefaults:
        """What a hybrid search uses when a call gives nothing: the model's weights, fusion method (else the
        weighted mean), calibrated spreads and weights per language (`trivec.models.weights`)."""
        return FusionDefaults(
            self.fusion_weights,
            self.model.fusion or "weighted",
            self.model.fusion_spreads,
            dict(self.model.fusion_weights_by_language),
        )

    def hybrid_weights(
        self, weights: Mapping[str, float] | Sequence[float] | None, language: str | None = None
    ) -> dict[str, float]:
        """The weights a hybrid score uses: `weights` (checked), else the model's for `language`, else the
        model's (`FusionDefaults.for_language`)."""
        return normalize_weights(weights, self.fusion_defaults.for_language(language).weights)

    def require(self, sparse: bool = False, colbert: bool = False) -> None:
        """Raise `UnsupportedOutputError` when the model (or the backend's graph) cannot give an output."""
        self._forward.require(sparse=sparse, colbert=colbert)

    # ------------------------------------------------------------------ tokenisation
    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids with special tokens, truncated to `max_length` (default: the model's limit)."""
        limit = self._check_max_length(max_length)
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=True,
            truncation=True,
            max_length=limit,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def overlong(
        self, texts: Sequence[str], max_length: int | None = None, read: Sequence[int] | None = None
    ) -> dict[int, int]:
        """Texts over `max_length` tokens (default: the model's limit) → their full token count (`spans`)."""
        return overlong(self.tokenizer, texts, self._check_max_length(max_length), read)

    def batch_plan(self, num_tokens: list[int], batch_tokens: int | None) -> tuple[int, list[list[int]]]:
        """The token budget (`batch_tokens`, else the embedder's) and the batches `encode` runs under it."""
        budget = self.batch_tokens if batch_tokens is None else batch_tokens
        return budget, plan_batches(num_tokens, budget, self.max_batch_size)

    def _check_max_length(self, max_length: int | None) -> int:
        if max_length is None:
            return self.max_length
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise InputError(f"max_length must be an integer ≥ 2, got {max_length!r}")
        limit = self.position_limit  # the default cut may be shorter (sentence-transformers' max_seq_length)
        if max_length > limit:
            raise InputError(f"max_length {max_length} exceeds the model's limit of {limit} tokens")
        return max_length

    # ------------------------------------------------------------------ prompts
    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The text `encode(..., prompt_name=, prompt=)` puts before every input ('' for none): `prompt` when
        given; else the prompt named `prompt_name` (a role `query` / `document` the model has no prompt for
        gives none; another unknown name is an `InputError`); else the default prompt, if any."""
        return select_prompt(self.prompts, self.default_prompt_name, prompt_name, prompt)

    def with_prompt(
        self, texts: Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> list[str]:
        """`texts` as `encode` feeds them to the model: each with the resolved prompt before it, and lower-cased
        first when written in capitals if the model asks for it (`trivec.models.casing`)."""
        prefix = self.resolve_prompt(prompt_name, prompt)
        check_text(prefix, "the prompt")
        if self.model.fold_capitals:
            texts = [fold_capitals(text) for text in texts]
        return [prefix + text for text in texts] if prefix else list(texts)

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        texts: str | Sequence[str],
        *,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        prompt_name: str | None = None,
        prompt: str | None = None,
        max_length: int | None = None,
        batch_tokens: int | None = None,
        mcls: bool = False,
        show_progress: bool | None = None,
        hidden_states: bool = False,
        layer: int = -1,
        colbert_coder: ColbertCoder | None = None,
        trim_heap: bool = False,
    ) -> EncodeResult:
        """Encode texts; any subset of the three outputs comes from one forward pass per batch.

        prompt_name: which of the prompts goes before every text — `"query"` for search queries, `"document"`
            for the passages searched (no prompt when the model has none for that role), or any other name
            the model's prompts have; None: the default prompt, if the model has one.
        prompt: the text to put before every text instead (wins over `prompt_name`; `""` for none).
        mcls: for long inputs insert a CLS token every 256 tokens and average their states as the dense vector.
        hidden_states: also return the token vectors of layer `layer` (0 = the embeddings' output, -1 = the
            last; `trivec.inference.hidden`), from a forward pass of their own.
        colbert_coder: with `colbert`, code each text's ColBERT rows as its forward pass gives them and return
            the codes (`colbert_codes`) instead of the rows: the float32 rows of one pass are held, not all.
        trim_heap: give the heap's free pages back after each forward pass (`trivec.heap.trim`): the passes'
            temporaries leave holes that stay resident otherwise (an index build's peak; ≈ 1 ms a pass).
        """
        items = text_list(texts)
        if not (dense or sparse or colbert or hidden_states):
            raise InputError("ask for at least one output: dense, sparse, colbert or hidden_states")
        check_batch_tokens(batch_tokens)
        self._forward.require(sparse=sparse, colbert=colbert)
        if self._pool is not None and items:
            return self._pool.encode(items, locals())  # the arguments as given, to the worker processes
        before = self.resolve_prompt(prompt_name, prompt)
        items = self.with_prompt(items, prompt=before)
        limit = self._check_max_length(max_length)
        ids = self.tokenize(items, limit)
        states = layer_states(self, ids, layer, batch_tokens) if hidden_states else None
        if not (dense or sparse or colbert):
            return EncodeResult(num_tokens=[len(x) for x in ids], hidden_states=states)
        slots: list[list[int]] | None = None
        if mcls:
            ids, slots = insert_cls_slots(ids, int(self.tokenizer.cls_token_id), limit)
        num_tokens = [len(x) for x in ids]
        outputs = TextOutputs(
            ids,
            slots,
            self._skip_ids,
            self.model.hidden_size,
            dense=dense,
            sparse=sparse,
            colbert=colbert,
            colbert_coder=colbert_coder if colbert else None,
            sparse_keys=self.model.sparse_keys,
            own_from=after_prompt(self.tokenizer, ids, before) if sparse else None,
        )
        _, batches = self.batch_plan(num_tokens, batch_tokens)
        if show_progress is None:
            show_progress = len(ids) >= 5000 and sys.stderr.isatty()
        bar = tqdm(total=sum(num_tokens), unit="tok", disable=not show_progress, desc="encode")
        with torch.inference_mode():
            for batch in batches:
                if self._packed is not None:
                    self._run_packed(batch, outputs)
                else:
                    self._run_padded(batch, outputs)
                if trim_heap:
                    heap.trim()
                bar.update(sum(num_tokens[i] for i in batch))
        bar.close()
        if self._packed is not None:
            self._packed.release()
        return EncodeResult(
            dense=outputs.dense,
            sparse=outputs.sparse_vectors(),
            colbert=outputs.colbert_rows(),
            colbert_codes=outputs.colbert_codes(),
            num_tokens=num_tokens,
            hidden_states=states,
        )

    def _run_padded(self, batch: list[int], outputs: TextOutputs) -> None:
        """One batch through the padded forward (torch or ONNX); results are written at the texts' positions."""
        input_ids, attention_mask = self._pad([outputs.ids[i] for i in batch])
        cls_slots = None
        if outputs.slots is not None:
            cls_slots = torch.zeros_like(attention_mask, dtype=torch.bool)
            for row, i in enumerate(batch):
                cls_slots[row, outputs.slots[i]] = True
        out = self._forward(
            input_ids,
            attention_mask,
            dense=outputs.dense is not None,
            sparse=outputs.sparse is not None,
            colbert=outputs.colbert is not None,
            cls_slots=cls_slots,
        )
        outputs.add_padded(batch, out)

    def _run_packed(self, batch: list[int], outputs: TextOutputs) -> None:
        """One batch through the unpadded forward; results are written at the texts' input positions."""
        assert self._packed is not None
        slots = outputs.slots
        out = self._packed(
            [outputs.ids[i] for i in batch],
            self.device,
            dense=outputs.dense is not None,
            sparse=outputs.sparse is not None,
            colbert=outputs.colbert is not None,
            cls_slots=[slots[i] for i in batch] if slots is not None else None,
        )
        outputs.add_packed(batch, out)

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    # ------------------------------------------------------------------ scoring
    def available_modes(self) -> list[str]:
        return ["dense"] + (["sparse"] if self.has_sparse else []) + (["colbert"] if self.has_colbert else [])

    def _modes(self, modes: Sequence[str] | None) -> list[str]:
        available = self.available_modes()
        if modes is None:
            return available
        for mode in modes:
            if mode not in ("dense", "sparse", "colbert"):
                raise InputError(f"unknown score mode {mode!r}; expected dense, sparse or colbert")
        self._forward.require(sparse="sparse" in modes, colbert="colbert" in modes)
        return [m for m in ("dense", "sparse", "colbert") if m in modes]

    def _encode_modes(
        self,
        texts: Sequence[str],
        modes: Sequence[str],
        prompt_name: str,
        prompt: str | None,
        max_length: int | None = None,
    ) -> EncodeResult:
        return self.encode(
            texts,
            dense="dense" in modes,
            sparse="sparse" in modes,
            colbert="colbert" in modes,
            prompt_name=prompt_name,
            prompt=prompt,
            max_length=max_length,
        )

    def score_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        modes: Sequence[str] | None = None,
        weights: dict[str, float] | Sequence[float] | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        max_query_length: int | None = None,
        max_passage_length: int | None = None,
        language: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Scores of (query, passage) pairs: one array per mode plus the weighted hybrids.

        Keys: `dense`, `sparse`, `colbert` (those the model has), `sparse+dense` and `colbert+sparse+dense`
        (weighted means of the available modes, as the reference's `compute_score` names them). Queries get
        the `query` prompt and passages the `document` prompt, unless `query_prompt` / `document_prompt`
        give the texts to use instead. The hybrids use `weights`, else the model's weights for the queries'
        `language` where it names one the model has weights for, else the model's.
        """
        used = self._modes(modes)
        w = self.hybrid_weights(weights, language)
        queries, passages = split_pairs(pairs)
        q_unique, q_index = distinct_texts(queries)
        p_unique, p_index = distinct_texts(passages)
        q = self._encode_modes(q_unique, used, QUERY, query_prompt, max_length=max_query_length)
        p = self._encode_modes(p_unique, used, DOCUMENT, document_prompt, max_length=max_passage_length)
        scores: dict[str, np.ndarray] = {}
        if q.dense is not None and p.dense is not None:
            scores["dense"] = np.einsum("nd,nd->n", q.dense[q_index], p.dense[p_index]).astype(np.float32)
        index_pairs = list(zip(q_index.tolist(), p_index.tolist(), strict=True))
        if q.sparse is not None and p.sparse is not None:
            qs, ps = q.sparse, p.sparse
            scores["sparse"] = np.array(
                [lexical_score(qs[a], ps[b]) for a, b in index_pairs], dtype=np.float32
            )
        if q.colbert is not None and p.colbert is not None:
            qc, pc = q.colbert, p.colbert
            scores["colbert"] = np.array([maxsim(qc[a], pc[b]) for a, b in index_pairs], dtype=np.float32)
        return with_hybrids(scores, w)

    def score(
        self,
        query: str,
        passages: Sequence[str],
        *,
        modes: Sequence[str] | None = None,
        weights: dict[str, float] | Sequence[float] | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        max_query_length: int | None = None,
        max_passage_length: int | None = None,
        language: str | None = None,
    ) -> dict[str, np.ndarray]:
        """One query against many passages; same keys and prompts as `score_pairs`."""
        if not isinstance(query, str):
            raise InputError(f"query must be a string, not {type(query).__name__}")
        check_text(query, "the query")
        text_list(passages, "passage")
        used = self._modes(modes)
        q = self._encode_modes([query], used, QUERY, query_prompt, max_length=max_query_length)
        p = self._encode_modes(passages, used, DOCUMENT, document_prompt, max_length=max_passage_length)
        scores: dict[str, np.ndarray] = {}
        if q.dense is not None and p.dense is not None:
            scores["dense"] = dense_scores(q.dense[0], p.dense)
        if q.sparse is not None and p.sparse is not None:
            scores["sparse"] = lexical_scores(q.sparse[0], p.sparse)
        if q.colbert is not None and p.colbert is not None:
            scores["colbert"] = maxsim_scores(q.colbert[0], p.colbert)
        return with_hybrids(scores, self.hybrid_weights(weights, language))
