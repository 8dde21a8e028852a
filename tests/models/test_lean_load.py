"""Loading in bf16 without a float32 copy (`trivec.models.lean_load`): the index fingerprint's sample read
from the safetensors file is byte for byte the one of the float32 weights, the weights are the float32 load
cast, and anything the file reader cannot map exactly falls back to loading in float32. The input embedding
table served from a mapped copy in the cache gives the same weights, vectors and fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from tests.conftest import TINY_M3, XLMR_TOKENIZER
from trivec import Embedder, heap
from trivec.models import M3Model, lean_load, resolve_model_path
from trivec.models.fingerprint import SUM_CHUNK, tensor_sample, weights_sample
from trivec.models.lean_load import SAFETENSORS_FILE, exact_names, load_in_dtype, load_tokenizer
from trivec.retrieval.identity import identify


def direct(directory: Path, dtype: torch.dtype = torch.bfloat16) -> bool:
    """Whether `directory` loads straight into `dtype` (else: float32, cast)."""
    return load_in_dtype(directory, AutoConfig.from_pretrained(directory), dtype) is not None


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8))


def check_as_float32_cast(directory: Path | str, dtype: torch.dtype = torch.bfloat16) -> None:
    """Loaded in `dtype`: the fingerprint sample and every weight as the float32 load gives them (cast)."""
    exact = M3Model.from_pretrained(directory)
    reduced = M3Model.from_pretrained(directory, dtype=dtype)
    assert reduced.float32_weights == weights_sample(exact)
    cast = exact.to(dtype).state_dict()
    loaded = reduced.state_dict()
    assert loaded.keys() == cast.keys()
    assert all(same_bits(loaded[k].contiguous(), cast[k].contiguous()) for k in cast)


def tiny_as_safetensors(target: Path, convert=None) -> Path:  # type: ignore[no-untyped-def]
    """tiny-m3 with its encoder in `model.safetensors` (`convert`: state dict → what the file holds)."""
    shutil.copytree(TINY_M3, target, ignore=shutil.ignore_patterns("pytorch_model.bin", "*.md"))
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    state = {k: v.contiguous() for k, v in AutoModel.from_pretrained(TINY_M3).state_dict().items()}
    save_file(convert(state) if convert else state, str(target / SAFETENSORS_FILE))
    return target


def test_tiny_m3_pytorch_bin_falls_back() -> None:
    assert not (TINY_M3 / SAFETENSORS_FILE).exists() and not direct(TINY_M3)
    check_as_float32_cast(TINY_M3)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tiny_m3_safetensors_loads_straight(tmp_path: Path, dtype: torch.dtype) -> None:
    directory = tiny_as_safetensors(tmp_path / "tiny")
    assert direct(directory, dtype)
    check_as_float32_cast(directory, dtype)
    # indexes built before keep opening: the fingerprint of the fixture's float32 weights
    half = Embedder.from_pretrained(directory, dtype="bfloat16", device="cpu")
    assert identify(half).fingerprint == identify(Embedder.from_pretrained(TINY_M3, device="cpu")).fingerprint


def test_half_precision_file_and_prefixed_names(tmp_path: Path) -> None:
    """A float16 file (read as float16 → float32) and names under the base-model prefix map exactly."""
    f16 = tiny_as_safetensors(tmp_path / "f16", lambda s: {k: v.half() for k, v in s.items()})
    prefixed = tiny_as_safetensors(tmp_path / "prefixed", lambda s: {f"roberta.{k}": v for k, v in s.items()})
    for directory in (f16, prefixed):
        assert direct(directory)
        check_as_float32_cast(directory)


def test_inexact_files_fall_back(tmp_path: Path) -> None:
    """A renamed, a missing or an extra-prefixed-twice tensor: not loaded from the file by this path."""

    def renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {
            k.replace("embeddings.LayerNorm.weight", "embeddings.LayerNorm.gamma"): v
            for k, v in state.items()
        }

    def missing(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # (a missing pooler is built out)
        return {k: v for k, v in state.items() if k != "encoder.layer.0.output.LayerNorm.bias"}

    def twice(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # one weight under two names
        return {**state, "roberta.embeddings.LayerNorm.bias": state["embeddings.LayerNorm.bias"].clone()}

    for name, convert in (("renamed", renamed), ("missing", missing), ("twice", twice)):
        assert not direct(tiny_as_safetensors(tmp_path / name, convert)), name
    check_as_float32_cast(tmp_path / "renamed")  # LayerNorm weights start at 1: the same either way


def test_tied_weights_are_not_mapped() -> None:
    class Tied(nn.Module):
        base_model_prefix = ""

        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(2, 2, bias=False)
            self.b = nn.Linear(2, 2, bias=False)
            self.b.weight = self.a.weight

    model = Tied()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    assert exact_names(model, state, {}) is None  # type: ignore[arg-type]
    untied = {"a.weight": state["a.weight"], "b.weight": state["a.weight"].clone()}
    model.b.weight = nn.Parameter(untied["b.weight"])
    assert exact_names(model, untied, {}) == {"a.weight": "a.weight", "b.weight": "b.weight"}  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "minilm-m3", "default"])
def test_published_models_load_straight_with_the_same_fingerprint(name: str) -> None:
    assert direct(resolve_model_path(name))
    check_as_float32_cast(name)


def test_sample_of_chunks_is_the_sample_of_the_tensor() -> None:
    """More than one sum chunk, a short last one, a scalar and an empty tensor."""
    generator = torch.Generator().manual_seed(0)
    for tensor in (
        torch.randn(SUM_CHUNK * 2 + 17, generator=generator),
        torch.tensor(3.5),
        torch.zeros(0, 4),
    ):
        sample = tensor_sample(tensor)
        assert sample.shape == tuple(tensor.shape)
    big = torch.randn(3, SUM_CHUNK // 2 + 5, generator=generator)
    assert tensor_sample(big) == tensor_sample(big.clone())


TEXTS = [
    "Hello world",
    "Ünïcödé ß 東京 \u200b tabs\tand  two  spaces, a <mask> and </s> inside",
    "",
    "  leading and trailing  ",
    "x" * 3000,
    "Wo ist der Bahnhof? 我喜欢绿茶。",
]


@pytest.mark.parametrize("where", ["default", "xlmr", "minilm"])
def test_tokenizer_without_its_vocabulary_list_is_the_same(where: str, tmp_path: Path) -> None:
    directory = {"default": resolve_model_path("default"), "xlmr": XLMR_TOKENIZER}.get(where)
    directory = directory or resolve_model_path("all-MiniLM-L6-v2")
    reference = AutoTokenizer.from_pretrained(directory)
    lean = load_tokenizer(directory)
    assert not isinstance(getattr(lean, "_vocab", None), list)
    assert type(lean) is type(reference) and len(lean) == len(reference)
    for limit in (8, 512):
        options = {"add_special_tokens": True, "truncation": True, "max_length": limit}
        assert lean(TEXTS, **options)["input_ids"] == reference(TEXTS, **options)["input_ids"]
    for attribute in (
        "all_special_ids",
        "cls_token_id",
        "sep_token_id",
        "pad_token_id",
        "unk_token_id",
        "mask_token_id",
        "model_max_length",
        "padding_side",
    ):
        assert getattr(lean, attribute) == getattr(reference, attribute), attribute
    ids = reference(TEXTS[1])["input_ids"]
    assert lean.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)
    assert lean.batch_decode([ids]) == reference.batch_decode([ids])
    assert (
        lean.pad({"input_ids": [ids, ids[:3]]})["input_ids"]
        == reference.pad({"input_ids": [ids, ids[:3]]})["input_ids"]
    )
    lean.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(TEXTS)["input_ids"] == reference(TEXTS)["input_ids"]


def test_heap_calls_are_safe() -> None:
    assert heap.trim() in (True, False)


def test_files_are_read_in_file_dtype(tmp_path: Path) -> None:
    """Integer tensors stay integers; floating ones take the target dtype."""
    directory = tiny_as_safetensors(tmp_path / "tiny")
    stored = load_file(str(directory / SAFETENSORS_FILE))
    loaded = load_in_dtype(directory, AutoConfig.from_pretrained(directory), torch.bfloat16)
    assert loaded is not None
    backbone, samples = loaded
    assert set(samples) == set(backbone.state_dict())
    for key, tensor in backbone.state_dict().items():
        assert tensor.dtype == (torch.bfloat16 if stored[key].is_floating_point() else stored[key].dtype)


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose mapping holds `tensor`'s storage (from /proc/self/maps), or None."""
    address = tensor.untyped_storage().data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in span.split("-"))
        if start <= address < end:
            name = rest[4] if len(rest) == 5 else ""
            return name if name.startswith("/") else None  # not [heap], [anon: ...]
    return None


def encode_bits(embedder: Embedder) -> list[bytes]:
    texts = ["the flow over a flat plate", "über 北京 🤖", "boundary layer transition at Mach 3"]
    out = embedder.encode(texts, dense=True, sparse=True, colbert=True)
    assert out.dense is not None and out.sparse is not None and out.colbert is not None
    return [
        out.dense.tobytes(),
        *(v.values.tobytes() for v in out.sparse),
        *(c.tobytes() for c in out.colbert),
    ]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_input_embeddings_served_from_a_checked_mapped_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tiny_as_safetensors(tmp_path / "tiny")
    monkeypatch.setenv("TRIVEC_CACHE", str(tmp_path / "cache"))
    in_memory = Embedder.from_pretrained(directory, dtype="bfloat16", device="cpu")
    assert mapped_file(in_memory.model.backbone.get_input_embeddings().weight) is None  # under the size
    monkeypatch.setattr(lean_load, "MAP_EMBEDDINGS_BYTES", 0)

    def load() -> tuple[Embedder, Path]:
        embedder = Embedder.from_pretrained(directory, dtype="bfloat16", device="cpu")
        weight = embedder.model.backbone.get_input_embeddings().weight
        found = mapped_file(weight)
        assert found is not None and found.startswith(str(tmp_path / "cache" / "embeddings"))
        assert isinstance(weight, nn.Parameter) and weight.dtype == torch.bfloat16
        return embedder, Path(found)

    mapped, copy = load()
    expected = in_memory.model.state_dict()
    assert all(same_bits(t, expected[k]) for k, t in mapped.model.state_dict().items())
    assert encode_bits(mapped) == encode_bits(in_memory)
    assert identify(mapped).fingerprint == identify(in_memory).fingerprint
    written = copy.stat().st_mtime_ns
    load()
    assert copy.stat().st_mtime_ns == written  # a copy that matches is not written again
    with copy.open("r+b") as f:  # a damaged copy is found and written afresh
        f.seek(100)
        f.write(b"\xff" * 64)
    again, _ = load()
    assert encode_bits(again) == encode_bits(in_memory)
    monkeypatch.setenv("TRIVEC_CACHE", str(copy))  # a cache that cannot be written: kept in memory
    kept = Embedder.from_pretrained(directory, dtype="bfloat16", device="cpu")
    assert mapped_file(kept.model.backbone.get_input_embeddings().weight) is None
    assert encode_bits(kept) == encode_bits(in_memory)


def test_mapped_embeddings_stay_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing to the weights (training a loaded model) changes the process's copy, never the cache file."""
    directory = tiny_as_safetensors(tmp_path / "tiny")
    monkeypatch.setenv("TRIVEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(lean_load, "MAP_EMBEDDINGS_BYTES", 0)
    model = M3Model.from_pretrained(directory, dtype=torch.bfloat16)
    weight = model.backbone.get_input_embeddings().weight
    copy = Path(str(mapped_file(weight)))
    before = copy.read_bytes()
    with torch.no_grad():
        weight[0] += 1
    assert copy.read_bytes() == before


def without_pooler(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("pooler.")}


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_a_checkpoint_without_a_pooler_loads_without_one(
    tmp_path: Path, dtype: torch.dtype | None, caplog: pytest.LogCaptureFixture
) -> None:
    """multilingual-e5-small stores no pooler: none is built (one built anyway would be initialised at random
    on each load — another index fingerprint every time, and a "missing weights" report)."""
    directory = tiny_as_safetensors(tmp_path / "no-pooler", without_pooler)
    assert lean_load.backbone_options(directory, AutoConfig.from_pretrained(directory)) == {
        "add_pooling_layer": False
    }
    with caplog.at_level("WARNING"):
        first = M3Model.from_pretrained(directory, dtype=dtype)
    assert first.backbone.pooler is None
    assert "MISSING" not in caplog.text and "newly initialized" not in caplog.text
    again = M3Model.from_pretrained(directory, dtype=dtype)
    assert (
        identify(Embedder(first, device="cpu")).fingerprint
        == identify(Embedder(again, device="cpu")).fingerprint
    )
    first.save_pretrained(tmp_path / "saved")
    assert not any(k.startswith("pooler.") for k in load_file(str(tmp_path / "saved" / SAFETENSORS_FILE)))


def test_a_stored_pooler_is_kept(tmp_path: Path) -> None:
    """The BAAI/bge-m3 layout stores a pooler: it loads and saves as stored (and a .bin cannot tell: kept)."""
    directory = tiny_as_safetensors(tmp_path / "pooler")
    assert lean_load.backbone_options(directory, AutoConfig.from_pretrained(directory)) == {}
    assert M3Model.from_pretrained(directory).backbone.pooler is not None
    assert lean_load.backbone_options(TINY_M3, AutoConfig.from_pretrained(TINY_M3)) == {}


def test_a_sharded_checkpoint_without_a_pooler_loads_without_one(tmp_path: Path) -> None:
    single = tiny_as_safetensors(tmp_path / "single", without_pooler)
    sharded = tmp_path / "sharded"
    AutoModel.from_pretrained(single, add_pooling_layer=False).save_pretrained(
        sharded, max_shard_size="200KB"
    )
    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "sentencepiece.bpe.model",
    ):
        if (single / name).is_file():
            shutil.copyfile(single / name, sharded / name)
    assert (sharded / "model.safetensors.index.json").is_file() and not (sharded / SAFETENSORS_FILE).exists()
    assert lean_load.backbone_options(sharded, AutoConfig.from_pretrained(sharded)) == {
        "add_pooling_layer": False
    }
    assert M3Model.from_pretrained(sharded).backbone.pooler is None
