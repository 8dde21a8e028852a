"""How an index stores its data (`IndexSettings`): fixed when it is created, recorded with it, checked once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trivec.errors import InputError
from trivec.models.prompts import ROLES, check_prompts
from trivec.retrieval.colbert import COLBERT_DTYPES, ColbertCodec
from trivec.retrieval.dense_codes import DEFAULT_OVERSAMPLING, DENSE_QUANTIZATIONS
from trivec.retrieval.pooling import check_pool_factor, check_pool_floor

if TYPE_CHECKING:
    from trivec.inference.encoder import Embedder
    from trivec.retrieval.residual import ResidualCodes


# settings added after indexes were first built: their values in an index that does not record them
BEFORE_RECORDED: dict[str, Any] = {
    "colbert_pool_factor": 1,
    "colbert_pool_floor": 0,
    "dense_quantization": "none",
    "dense_oversampling": None,
    "max_segment_rows": None,
}
# what the Qdrant backend can keep on disk (`qdrant_on_disk`); the Qdrant backend's own settings
QDRANT_ON_DISK = ("dense", "colbert", "sparse", "hnsw", "payload")
QDRANT_SETTINGS = ("qdrant_on_disk", "qdrant_shards", "qdrant_replicas")


@dataclass
class IndexSettings:
    """How an index stores its data; fixed when it is created (recorded with it).

    prompts: `{"query": ..., "document": ...}`, the texts put before queries and documents ("" for none).
    Given roles are used as they are; `Index.create` fills the others from the model's prompts. None in an
    index built before prompts were recorded: the model's prompts apply.

    dense_quantization: "none" (the flat first stage reads float32), "int8" or "binary" — the flat first
    stage scans codes and re-scores its best ⌈k × dense_oversampling⌉ rows per segment from the float32
    vectors (`trivec.retrieval.dense_codes`); dense_oversampling None: the kind's default (int8 2, binary 8).
    With codes every segment is searched flat: dense_index "auto" no longer switches to HNSW, and "hnsw" /
    "ivf" are refused (a graph keeps its own fp16 copy instead, `hnsw_storage`).

    colbert_dtype / colbert_pool_factor / colbert_pool_floor: int4 codes over tokens pooled by 3, never to
    fewer than 32 vectors per document, by default (within 0.5 nDCG@10 point of fp16 in `colbert` and
    `hybrid` over eleven retrieval sets at 1/11.2 of its bytes, docs/scale.md). `residual2` over tokens
    pooled by 2 is closer still at 3/4 of int4's bytes, the storage that lets 1M documents stay in this
    machine's memory; its codebook is fitted once the index holds `FIT_SAMPLE` stored tokens, rows staged as
    float16 until then (`ColbertCodec.staging`).

    max_segment_rows: None (no limit), or the most rows a segment holds: a build or add writes a new
    segment whenever the next batch would take the current one past it, and merges never make a larger
    one. Each segment gets its own graph and every search reads all of them: an HNSW graph's build time
    grows faster than its rows, so a bounded segment keeps a large build linear, for a few more graphs per
    query. A capped index may hold more than `max_segments` segments (when no merge fits under the cap).

    The Qdrant backend's own settings (None: Qdrant's defaults; the embedded index refuses them):
    qdrant_on_disk, the parts of the collection kept on disk — any of dense and colbert (the original
    vectors), sparse (its inverted index), hnsw (the dense graph) and payload (the chunks) — the others
    in RAM; qdrant_shards / qdrant_replicas, the collection's shard count and replication factor on a
    cluster (`trivec.retrieval.qdrant`).
    """

    chunk_tokens: int | None = None
    chunk_overlap: int = 0
    max_length: int | None = None
    sparse: bool = True
    colbert: bool = True
    colbert_dtype: str = "int4"
    colbert_dim: int | None = None
    colbert_pool_factor: int = 3
    colbert_pool_floor: int = 32
    dense_index: str = "auto"
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 320
    hnsw_storage: str = "float16"
    ivf_nprobe: int = 32
    max_segments: int = 8
    max_segment_rows: int | None = None
    prompts: dict[str, str] | None = None
    dense_quantization: str = "none"
    dense_oversampling: float | None = None
    qdrant_on_disk: list[str] | None = None
    qdrant_shards: int | None = None
    qdrant_replicas: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def colbert_codec(
        self, projection: np.ndarray | None = None, residual: ResidualCodes | None = None
    ) -> ColbertCodec:
        """The ColBERT codec these settings describe, with what the index fitted (projection, codebook)."""
        return ColbertCodec(
            self.colbert_dtype, projection, self.colbert_pool_factor, residual, self.colbert_pool_floor
        )

    @property
    def oversampling(self) -> float:
        """The first stage's oversampling: the setting, else the quantisation's default (1: no codes)."""
        if self.dense_oversampling is not None:
            return float(self.dense_oversampling)
        return DEFAULT_OVERSAMPLING.get(self.dense_quantization, 1.0)

    def ann_for(self, rows: int) -> dict[str, Any] | None:
        """The ANN structure a segment of `rows` rows gets under these settings (None: flat, exact scan)."""
        kind = self.dense_index
        if (
            self.dense_quantization != "none"
        ):  # codes: every segment flat ("hnsw" / "ivf" refused by validate)
            return None
        if kind == "auto":
            kind = "hnsw" if rows >= self.ann_threshold else "flat"
        if kind == "flat":
            return None
        if kind == "hnsw":
            return {
                "kind": "hnsw",
                "m": self.hnsw_m,
                "ef_construction": self.hnsw_ef_construction,
                "storage": self.hnsw_storage,
            }
        return {"kind": "ivf"}

    def check_colbert_dim(self, model_colbert_dim: int | None) -> None:
        """A reduced `colbert_dim` must be smaller than the model's ColBERT width (checked when an index is
        made for a model)."""
        dim = self.colbert_dim
        if dim is not None and model_colbert_dim is not None and not 1 <= dim < model_colbert_dim:
            raise InputError(f"colbert_dim must be between 1 and {model_colbert_dim - 1}, got {dim}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSettings:
        """Recorded settings; those an older index does not record take the values it was built with."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**BEFORE_RECORDED, **known})

    def validate(self) -> IndexSettings:
        """Raise `InputError` naming the first setting out of range (as the option `trivec index build`
        takes for it, on the command line); returns the settings."""
        choices = {
            "dense_index": ("auto", "flat", "hnsw", "ivf"),
            "hnsw_storage": ("float16", "float32"),
            "colbert_dtype": COLBERT_DTYPES,
            "dense_quantization": DENSE_QUANTIZATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                _setting_error(
                    name, f"must be {', '.join(allowed[:-1])} or {allowed[-1]}", getattr(self, name)
                )
        positive = ("ann_threshold", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe")
        for name in (*positive, "max_segments"):
            _check_int(name, getattr(self, name), 1)
        check_pool_factor(self.colbert_pool_factor)
        check_pool_floor(self.colbert_pool_floor)
        for name, minimum in (
            ("chunk_tokens", 1),
            ("colbert_dim", 1),
            ("max_length", 2),
            ("max_segment_rows", 1),
            ("qdrant_shards", 1),
            ("qdrant_replicas", 1),
        ):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum)
        _check_int("chunk_overlap", self.chunk_overlap, 0)
        self._check_quantization()
        self._check_on_disk()
        if self.chunk_tokens is None and self.chunk_overlap:
            raise InputError(
                "chunk_overlap applies to chunking: give chunk_tokens too",
                cli="--chunk-overlap applies to chunking: give --chunk-tokens too",
            )
        if self.chunk_tokens is not None and self.chunk_overlap >= self.chunk_tokens:
            raise InputError(
                f"chunk_overlap must be less than chunk_tokens ({self.chunk_tokens}), got {self.chunk_overlap}",
                cli=f"--chunk-overlap must be less than --chunk-tokens ({self.chunk_tokens}), got "
                f"{self.chunk_overlap}",
            )
        for name in ("sparse", "colbert"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.prompts is not None:
            check_prompts(self.prompts, "index prompts")
            unknown = set(self.prompts) - set(ROLES)
            if unknown:
                raise InputError(
                    f"index prompts are given per role ({', '.join(ROLES)}), not {', '.join(sorted(unknown))}"
                )
        return self

    def _check_on_disk(self) -> None:
        parts = self.qdrant_on_disk
        if parts is not None and (
            not isinstance(parts, list)
            or len(set(parts)) != len(parts)
            or not set(parts) <= set(QDRANT_ON_DISK)
        ):
            _setting_error(
                "qdrant_on_disk", f"must name distinct parts of {', '.join(QDRANT_ON_DISK)}", parts
            )

    def _check_quantization(self) -> None:
        over = self.dense_oversampling
        if over is not None and (
            not isinstance(over, (int, float))
            or isinstance(over, bool)
            or not math.isfinite(over)
            or over < 1
        ):
            _setting_error("dense_oversampling", "must be a number ≥ 1", over)
        if self.dense_quantization == "none" and over is not None:
            raise InputError(
                "dense_oversampling applies to quantised dense vectors: give dense_quantization too",
                cli="--dense-oversampling applies to quantised dense vectors: give --dense-quantization too",
            )
        if self.dense_quantization != "none" and self.dense_index in ("hnsw", "ivf"):
            raise InputError(
                f"dense_quantization {self.dense_quantization} applies to the flat first stage, not to "
                f"dense_index {self.dense_index} (its graph keeps its own copy: hnsw_storage); choose one",
                cli=f"--dense-quantization {self.dense_quantization} applies to the flat first stage, not to "
                f"--dense-index {self.dense_index} (its graph keeps its own copy); choose one",
            )


def _setting_error(name: str, problem: str, value: Any) -> None:
    raise InputError(
        f"{name} {problem}, got {value!r}", cli=f"--{name.replace('_', '-')} {problem}, got {value}"
    )


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        _setting_error(
            name, "must be a positive integer" if minimum == 1 else f"must be an integer ≥ {minimum}", value
        )


def check_for_model(settings: IndexSettings, embedder: Embedder) -> None:
    """Settings that depend on the model: truncation within its limit, a ColBERT reduction below its width."""
    limit = embedder.position_limit
    if settings.max_length is not None and settings.max_length > limit:
        raise InputError(
            f"max_length {settings.max_length} exceeds the model's limit of {limit} tokens",
            cli=f"--max-length {settings.max_length} exceeds the model's limit of {limit} tokens",
        )
    colbert = embedder.model.colbert_head
    full = int(colbert.out_features) if colbert is not None else None
    if settings.colbert_dim is not None and full is not None and settings.colbert_dim >= full:
        raise InputError(
            f"colbert_dim must be between 1 and {full - 1} (the model's ColBERT vectors have {full}), "
            f"got {settings.colbert_dim}",
            cli=f"--colbert-dim must be between 1 and {full - 1} (the model's ColBERT vectors have {full}), "
            f"got {settings.colbert_dim}",
        )
