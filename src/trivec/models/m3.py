"""`M3Model`: a Hugging Face encoder (XLM-R, BERT, …) with BGE-M3's dense, sparse and ColBERT heads.

The backbone is loaded with `transformers.AutoModel`; trivec owns pooling and the two heads. A directory
in the layout of `BAAI/bge-m3` (encoder weights + `colbert_linear.pt` + `sparse_linear.pt`) gives all three
outputs; a BGE v1.5 / sentence-transformers directory (no head files) gives the dense output only.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from trivec.errors import CheckpointError, InputError, UnsupportedOutputError
from trivec.models.casing import LowercaseKeys
from trivec.models.checkpoint import (
    TOKENIZER_FILES,
    SentenceTransformersInfo,
    head_files_present,
    heads_directory,
    quiet_loading,
    read_json_object,
    read_sentence_transformers_info,
    resolve_model_path,
    write_sentence_transformers_files,
)
from trivec.models.cross_encoder import refuse_cross_encoder
from trivec.models.fingerprint import join_samples, tensor_sample, weights_sample
from trivec.models.heads import COLBERT_HEAD_FILE, SPARSE_HEAD_FILE, ColbertHead, SparseHead
from trivec.models.lean_load import Samples, backbone_options, load_in_dtype, load_tokenizer
from trivec.models.lora import LORA_DIR, is_lora, merged_copy
from trivec.models.pooling import PoolingMode, check_pooling_mode, pool, pool_cls_slots
from trivec.models.prompts import (
    PromptConfig,
    check_default_name,
    check_prompts,
    read_prompts,
    write_prompts,
)
from trivec.models.weights import check_language_weights, check_model_fusion, normalize_weights

logger = logging.getLogger("trivec.models")
HeadsPolicy = Literal["auto", "require", "init", "none"]
TRIVEC_CONFIG_FILE = "trivec_config.json"
# the `trivec_config.json` flags that change how the model reads text (saved only when set)
READING_FLAGS = ("fold_capitals", "lowercase_sparse_keys")


@dataclass
class M3Output:
    """What one forward pass returns; fields are None when not asked for.

    dense: `[B, H]` pooled (normalised when the model normalises);
    token_weights: `[B, L]` sparse weights of every position (padding included, ≥ 0);
    colbert: `[B, L−1, D]` vectors of positions 1… (padding rows zeroed).
    """

    dense: torch.Tensor | None = None
    token_weights: torch.Tensor | None = None
    colbert: torch.Tensor | None = None


class M3Model(nn.Module):
    """Encoder + pooling + optional sparse and ColBERT heads.

    `prompts` (`{name: text}`, e.g. `{"query": "query: ", "document": "passage: "}`) and `default_prompt_name`
    are the model's sentence-transformers prompts (`trivec.models.prompts`); the `Embedder` applies them.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        pooling: PoolingMode = "cls",
        normalize: bool = True,
        sparse_head: SparseHead | None = None,
        colbert_head: ColbertHead | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        max_seq_length: int | None = None,
        fold_capitals: bool = False,
        lowercase_sparse_keys: bool = False,
        fusion_weights: dict[str, float] | None = None,
        fusion: str | None = None,
        fusion_spreads: Mapping[str, Sequence[float]] | None = None,
        fusion_weights_by_language: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        super().__init__()
        self.backbone: PreTrainedModel = backbone
        self.tokenizer = tokenizer
        self.pooling: PoolingMode = check_pooling_mode(pooling)
        self.normalize = normalize
        self.sparse_head = sparse_head
        self.colbert_head = colbert_head
        self.prompts: dict[str, str] = check_prompts(prompts or {}, "prompts")
        self.default_prompt_name = check_default_name(default_prompt_name, self.prompts, "prompts")
        self.max_seq_length = max_seq_length
        self.fold_capitals = fold_capitals  # lower-case texts written in capitals (`trivec.models.casing`)
        # lexical weights matched regardless of case (`trivec.models.casing.LowercaseKeys`), else by piece
        self.sparse_keys = LowercaseKeys(tokenizer, self.special_token_ids) if lowercase_sparse_keys else None
        # hybrid weights chosen for this model (None: M3's; `trivec.models.weights`)
        self.fusion_weights = normalize_weights(fusion_weights) if fusion_weights is not None else None
        # its fusion method (None: the weighted mean) and `auto` fusion's calibrated spreads (`models.weights`)
        self.fusion, self.fusion_spreads = check_model_fusion(fusion, fusion_spreads)
        # weights chosen for one language's queries, used where a call names it (`models.weights`)
        self.fusion_weights_by_language = check_language_weights(fusion_weights_by_language or {})
        self.source: str | None = None
        # `weights_sample` of the float32 weights, kept when loaded in another dtype (an index's fingerprint)
        self.float32_weights: bytes | None = None

    # ------------------------------------------------------------------ properties
    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def has_sparse(self) -> bool:
        return self.sparse_head is not None

    @property
    def has_colbert(self) -> bool:
        return self.colbert_head is not None

    @property
    def lowercase_sparse_keys(self) -> bool:
        return self.sparse_keys is not None

    @property
    def max_length(self) -> int:
        """Where inputs are cut by default (special tokens included): the `max_seq_length` of the model's
        `sentence_bert_config.json`, as sentence-transformers cuts them, else the position table's limit."""
        limit = self.position_limit
        return min(self.max_seq_length, limit) if self.max_seq_length else limit

    @property
    def position_limit(self) -> int:
        """The longest input (special tokens included) the position table allows."""
        config = self.backbone.config
        positions = int(getattr(config, "max_position_embeddings", 512))
        if getattr(config, "model_type", "") in {"xlm-roberta", "roberta", "camembert", "xlm-roberta-xl"}:
            positions -= int(config.pad_token_id) + 1  # RoBERTa positions start at padding_idx + 1
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < positions:
            return tokenizer_limit
        return positions

    @property
    def special_token_ids(self) -> frozenset[int]:
        """Ids never given a lexical weight: cls, eos, pad, unk (as the reference drops them)."""
        ids = set()
        for name in ("cls_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "sep_token_id"):
            value = getattr(self.tokenizer, name, None)
            if isinstance(value, int):
                ids.add(value)
        return frozenset(ids)

    def require(self, sparse: bool = False, colbert: bool = False) -> None:
        """Raise a clear error when an output is asked of a model without its head."""
        wanted = (("sparse", sparse, self.has_sparse), ("colbert", colbert, self.has_colbert))
        missing = [name for name, want, have in wanted if want and not have]
        if missing:
            what = (
                f"model {self.source or ''} has no {' or '.join(missing)} head (it is a dense-only checkpoint: "
                f"no {SPARSE_HEAD_FILE}/{COLBERT_HEAD_FILE}); ask for dense output"
            )
            raise UnsupportedOutputError(
                f"{what}, or load it with heads='init' to create new heads for training",
                cli=f"{what}, or train heads for it (`trivec train m3`)",
            )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        cls_slots: torch.Tensor | None = None,
    ) -> M3Output:
        """Run the encoder once and the requested heads on its last hidden states.

        `cls_slots [B, L]` (bool) switches dense pooling to MCLS: the states at those positions are averaged.
        """
        self.require(sparse=sparse, colbert=colbert)
        has_padding = bool((attention_mask == 0).any())
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask if has_padding else None
        ).last_hidden_state
        return self.apply_heads(hidden, attention_mask, dense, sparse, colbert, cls_slots)

    def apply_heads(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        dense: bool = True,
        sparse: bool = False,
        colbert: bool = False,
        cls_slots: torch.Tensor | None = None,
    ) -> M3Output:
        """The requested outputs from the encoder's last hidden states `[B, L, H]` (padded batch): pooled
        (and normalised) dense, per-token sparse weights, ColBERT vectors of every token after the first,
        padding zeroed. Shared by `forward` and backends that run the encoder elsewhere (ONNX)."""
        out = M3Output()
        if dense:
            pooled = (
                pool_cls_slots(hidden, cls_slots)
                if cls_slots is not None
                else pool(hidden, attention_mask, self.pooling)
            )
            out.dense = F.normalize(pooled, dim=-1) if self.normalize else pooled
        if sparse:
            assert self.sparse_head is not None
            out.token_weights = self.sparse_head(hidden)
        if colbert:
            assert self.colbert_head is not None
            vectors = self.colbert_head(hidden[:, 1:], normalize=True)
            out.colbert = vectors * attention_mask[:, 1:].unsqueeze(-1).to(vectors.dtype)
        return out

    def sparse_vocab_vectors(self, input_ids: torch.Tensor, token_weights: torch.Tensor) -> torch.Tensor:
        """Bag-of-words vectors `[B, V]`: max weight per token id (per lexical key, with
        `lowercase_sparse_keys`), special ids zeroed (differentiable)."""
        vocab = int(self.backbone.config.vocab_size)
        vectors = torch.zeros(
            input_ids.shape[0], vocab, dtype=token_weights.dtype, device=token_weights.device
        )
        keys, weights = input_ids, token_weights
        if self.sparse_keys is not None:  # each key takes the largest weight of the positions it pairs with
            pairs = self.sparse_keys.batch_pairs(input_ids.cpu().numpy(), min(self.special_token_ids))
            keys, positions = (torch.from_numpy(a).to(input_ids.device) for a in pairs)
            weights = token_weights.gather(1, positions)
        vectors = vectors.scatter_reduce(1, keys, weights, reduce="amax", include_self=True)
        keep = torch.ones(vocab, dtype=token_weights.dtype, device=token_weights.device)
        keep[list(self.special_token_ids)] = 0
        return vectors * keep

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        heads: HeadsPolicy = "auto",
        pooling: PoolingMode | None = None,
        normalize: bool | None = None,
        colbert_dim: int | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
    ) -> M3Model:
        """Load a checkpoint from a directory, `default`, or a hub id.

        heads: `auto` loads both head files when present and gives a dense-only model when neither is;
        `require` insists on both; `init` creates new (seeded) heads where files are missing — for training;
        `none` ignores head files. Exactly one head file present is an error under `auto`/`require`.
        """
        directory = resolve_model_path(name_or_path)
        if not (directory / "config.json").is_file():
            raise CheckpointError(f"{directory} has no config.json: not a Hugging Face model directory")
        trivec_config = _read_trivec_config(directory)
        st_info = read_sentence_transformers_info(directory)
        if not any((directory / name).is_file() for name in TOKENIZER_FILES):
            raise CheckpointError(
                f"{directory} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}): copy them from "
                "where the model came from"
            )
        prompt_config = read_prompts(directory, legacy_query_prompt=trivec_config.get("query_instruction"))
        reduced = dtype if dtype is not None and dtype != torch.float32 else None
        try:
            with quiet_loading():
                config = AutoConfig.from_pretrained(directory)
                if heads != "init":
                    refuse_cross_encoder(directory, config)
                # first: what its loading freed goes back to the system before the weights arrive
                tokenizer = load_tokenizer(directory)
                # an index fingerprints the float32 weights, whatever the dtype: read from the file while
                # loading straight into `dtype` where that is exact, else loaded in float32 and cast below
                direct = load_in_dtype(directory, config, reduced) if reduced is not None else None
                backbone, samples = direct or (
                    AutoModel.from_pretrained(
                        directory, config=config, dtype=torch.float32, **backbone_options(directory, config)
                    ),
                    None,
                )
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"cannot load the encoder or tokenizer from {directory}: {exc}") from exc
        _check_tokenizer(directory, tokenizer, config)
        hidden_size = int(config.hidden_size)
        sparse_head, colbert_head = _load_heads(
            heads_directory(name_or_path, directory), hidden_size, heads, colbert_dim, seed
        )
        chosen, pooling_source = _choose_pooling(directory, pooling, trivec_config, st_info)
        model = cls(
            backbone,
            tokenizer,
            pooling=chosen,
            normalize=normalize if normalize is not None else trivec_config.get("normalize", True),
            sparse_head=sparse_head,
            colbert_head=colbert_head,
            prompts=prompt_config.prompts,
            default_prompt_name=prompt_config.default_prompt_name,
            max_seq_length=st_info.max_seq_length,
            fold_capitals=_read_flag(trivec_config, "fold_capitals", directory),
            lowercase_sparse_keys=_read_flag(trivec_config, "lowercase_sparse_keys", directory),
            fusion_weights=_read_weights(trivec_config, directory),
            **_read_fusion(trivec_config, directory),
        )
        model.source = str(name_or_path)
        if reduced is not None:
            model.float32_weights = _float32_sample(model, samples)
            model.to(reduced)
        logger.info(
            "model %s: %s pooling (%s), %snormalised, inputs cut at %d tokens, %s",
            name_or_path,
            model.pooling,
            pooling_source,
            "" if model.normalize else "not ",
            model.max_length,
            "dense, sparse and ColBERT outputs" if model.has_sparse else "dense output only",
        )
        return model.eval()

    def save_pretrained(
        self, directory: str | os.PathLike[str], head_dtype: torch.dtype | None = None
    ) -> Path:
        """Save in the BAAI layout: encoder (`save_pretrained`), tokenizer, head files, ST view (prompts in
        `config_sentence_transformers.json`), trivec config.

        `head_dtype=torch.float16` writes the heads as the hub's bge-m3 does; the default keeps their dtype so
        that save → load is exact.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        merged_copy(self.backbone).save_pretrained(out)
        if is_lora(self.backbone):
            self.backbone.save_pretrained(out / LORA_DIR)  # the adapters alone, to ship or re-apply
        self.tokenizer.save_pretrained(out)
        for head in (self.sparse_head, self.colbert_head):
            if head is not None:
                head.save(out, dtype=head_dtype)
        write_sentence_transformers_files(
            out, self.pooling, self.normalize, self.max_length, self.hidden_size
        )
        write_prompts(out, PromptConfig(dict(self.prompts), self.default_prompt_name))
        config: dict[str, object] = {"pooling": self.pooling, "normalize": self.normalize}
        for flag in READING_FLAGS:
            if getattr(self, flag):
                config[flag] = True
        if self.fusion_weights is not None:
            config["fusion_weights"] = self.fusion_weights
        if self.fusion is not None:
            config["fusion"] = self.fusion
        if self.fusion_spreads is not None:
            config["fusion_spreads"] = {m: list(pair) for m, pair in self.fusion_spreads.items()}
        if self.fusion_weights_by_language:
            config["fusion_weights_by_language"] = self.fusion_weights_by_language
        (out / TRIVEC_CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
        return out


def _float32_sample(model: M3Model, backbone: Samples | None) -> bytes:
    """`weights_sample` of the float32 model, before it is cast: the backbone's from `backbone` (read from its
    file by `load_in_dtype`) where given, the heads' (float32 until the cast) from their tensors."""
    if backbone is None:
        return weights_sample(model)
    samples = {
        name: backbone[name[len("backbone.") :]] if name.startswith("backbone.") else tensor_sample(tensor)
        for name, tensor in model.state_dict().items()
    }
    return join_samples(samples)


def _choose_pooling(
    directory: Path,
    override: str | None,
    trivec_config: dict,
    st_info: SentenceTransformersInfo,
) -> tuple[PoolingMode, str]:
    """The pooling to load a model with, and where it comes from (for the log line)."""
    if override:
        return check_pooling_mode(override), "as asked"
    if trivec_config.get("pooling"):
        return check_pooling_mode(trivec_config["pooling"]), TRIVEC_CONFIG_FILE
    if st_info.pooling_error:
        raise CheckpointError(st_info.pooling_error)
    if st_info.pooling is not None:
        where = st_info.pooling_file
        return st_info.pooling, (str(where.relative_to(directory)) if where else "sentence-transformers")
    return "cls", "no pooling configuration found: CLS, as BGE pools"


def _check_tokenizer(directory: Path, tokenizer: PreTrainedTokenizerBase, config: object) -> None:
    """Refuse a tokenizer far smaller than the model's vocabulary: transformers builds one from an incomplete
    directory without a word, and every text then becomes unknown tokens (all texts get the same vector)."""
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    size = len(tokenizer)
    if vocab and size < vocab // 4:
        present = [name for name in TOKENIZER_FILES if (directory / name).is_file()]
        raise CheckpointError(
            f"{directory}: the tokenizer has {size} tokens but the model's vocabulary has {vocab}: its tokenizer "
            f"files ({', '.join(present) or 'none'}) are incomplete or belong to another model"
        )


def _read_flag(trivec_config: dict, key: str, directory: Path) -> bool:
    value = trivec_config.get(key, False)
    if not isinstance(value, bool):
        raise CheckpointError(f"{directory / TRIVEC_CONFIG_FILE}: {key} must be true or false, got {value!r}")
    return value


def _read_weights(trivec_config: dict, directory: Path) -> dict[str, float] | None:
    value = trivec_config.get("fusion_weights")
    if value is None:
        return None
    try:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object {{dense, sparse, colbert}}, got {value!r}")
        return normalize_weights(value)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{directory / TRIVEC_CONFIG_FILE}: fusion_weights: {exc}") from None


def _read_fusion(trivec_config: dict, directory: Path) -> dict[str, Any]:
    """The model's fusion method, calibrated spreads and weights per language (`fusion`, `fusion_spreads`,
    `fusion_weights_by_language`), checked here."""
    try:
        method, spreads = check_model_fusion(trivec_config.get("fusion"), trivec_config.get("fusion_spreads"))
    except InputError as exc:
        raise CheckpointError(f"{directory / TRIVEC_CONFIG_FILE}: {exc}") from None
    try:
        by_language = check_language_weights(trivec_config.get("fusion_weights_by_language", {}))
    except ValueError as exc:
        raise CheckpointError(
            f"{directory / TRIVEC_CONFIG_FILE}: fusion_weights_by_language: {exc}"
        ) from None
    return {"fusion": method, "fusion_spreads": spreads, "fusion_weights_by_language": by_language}


def _read_trivec_config(directory: Path) -> dict:
    return read_json_object(directory / TRIVEC_CONFIG_FILE) or {}


def _load_heads(
    directory: Path, hidden_size: int, policy: HeadsPolicy, colbert_dim: int | None, seed: int
) -> tuple[SparseHead | None, ColbertHead | None]:
    if policy not in ("auto", "require", "init", "none"):
        raise ValueError(f"heads must be one of auto, require, init, none (got {policy!r})")
    if policy == "none":
        return None, None
    has_sparse, has_colbert = head_files_present(directory)
    if policy in ("auto", "require") and has_sparse != has_colbert:
        present, missing = (
            (SPARSE_HEAD_FILE, COLBERT_HEAD_FILE) if has_sparse else (COLBERT_HEAD_FILE, SPARSE_HEAD_FILE)
        )
        raise CheckpointError(
            f"{directory} has {present} but not {missing}: an M3 checkpoint needs both head files "
            "(pass heads='init' to create the missing one)"
        )
    if policy == "require" and not has_sparse:
        raise CheckpointError(
            f"{directory} has no head files ({SPARSE_HEAD_FILE}, {COLBERT_HEAD_FILE}); it is a dense-only model"
        )
    if policy == "auto" and not has_sparse:
        return None, None
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sparse = (
            SparseHead.load(directory / SPARSE_HEAD_FILE, hidden_size)
            if has_sparse
            else SparseHead(hidden_size)
        )
        colbert = (
            ColbertHead.load(directory / COLBERT_HEAD_FILE, hidden_size)
            if has_colbert
            else ColbertHead(hidden_size, colbert_dim)
        )
    finally:
        torch.random.set_rng_state(generator_state)
    if colbert_dim and colbert.out_features != colbert_dim:
        raise CheckpointError(
            f"{directory / COLBERT_HEAD_FILE} has dimension {colbert.out_features}, not the requested {colbert_dim}"
        )
    assert isinstance(sparse, SparseHead) and isinstance(colbert, ColbertHead)
    return sparse, colbert
