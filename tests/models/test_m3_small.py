"""m3-small, the offline default: built from the package's adapters and heads, three outputs, e5's prompts,
small to ship, and `package` → `build_model` reproducing a trained run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from trivec import Embedder
from trivec.errors import CheckpointError
from trivec.models import M3Model, resolve_model_path
from trivec.models.m3_small import PACKAGED_DIR, build_model, package
from trivec.training.arguments import M3_DEFAULTS, build_config
from trivec.training.train import train_contrastive


@pytest.fixture(scope="module")
def m3_small() -> Embedder:
    return Embedder.from_pretrained("default", device="cpu")


def test_default_is_m3_small_with_three_outputs_and_e5_prompts(m3_small: Embedder) -> None:
    assert resolve_model_path("default") == resolve_model_path("m3-small")
    assert m3_small.available_modes() == ["dense", "sparse", "colbert"]
    assert m3_small.model.prompts == {"query": "query: ", "document": "passage: "}
    assert m3_small.model.pooling == "mean" and m3_small.max_length == 512
    # its fusion settings, chosen on validation sets (docs/m3-small.md): M3's weights, auto fusion
    defaults = m3_small.fusion_defaults
    assert defaults.weights == {"dense": 0.4, "sparse": 0.2, "colbert": 0.4} and defaults.method == "auto"
    assert defaults.spreads is not None and set(defaults.spreads) == {"dense", "sparse", "colbert"}
    # and weights per language, chosen on one validation cut and adopted where the next cut agreed: TyDi QA's
    # Indonesian questions lean on dense; every mode keeps a share; none were chosen for English
    assert "id" in defaults.by_language
    assert defaults.for_language("id").weights["dense"] > defaults.weights["dense"]
    assert all(w >= 0.05 for chosen in defaults.by_language.values() for w in chosen.values())
    assert defaults.for_language("en").weights == defaults.weights


def test_what_ships_is_a_few_megabytes() -> None:
    size = sum(p.stat().st_size for p in PACKAGED_DIR.rglob("*") if p.is_file())
    assert size < 10_000_000


def test_finds_translations_and_weighs_rare_words(m3_small: Embedder) -> None:
    queries = m3_small.encode(["Where is the train station?", "I like green tea."], prompt_name="query")
    docs = m3_small.encode(
        ["Wo ist der Bahnhof?", "我喜欢绿茶。", "The weather is nice today."],
        prompt_name="document",
        sparse=True,
    )
    assert queries.dense is not None and docs.dense is not None and docs.sparse is not None
    scores = queries.dense @ docs.dense.T
    assert scores[0].argmax() == 0 and scores[1].argmax() == 1
    weather = docs.sparse[2]
    tokens = m3_small.tokenizer.convert_ids_to_tokens(weather.indices.tolist())
    weight = dict(zip(tokens, weather.values.tolist(), strict=True))
    assert weight["▁weather"] > max(
        weight.get("▁is", 0.0), weight.get("▁The", 0.0)
    )  # lexical sense: IDF-like


def test_package_then_build_reproduces_a_lora_run(tmp_path: Path) -> None:
    data = [str(write_jsonl(tmp_path / "train.jsonl", synthetic_rows(16)))]
    overrides = quick_overrides(tmp_path, data, lora_rank=4, max_steps=2, learning_rate=1e-2)
    run = train_contrastive(build_config({}, overrides, defaults=M3_DEFAULTS))
    shipped = tmp_path / "shipped"
    files = package(run, shipped)
    assert {p.name for p in files} >= {"adapter_model.safetensors", "sparse_linear.pt", "colbert_linear.pt"}
    base = tmp_path / "base-without-pooler"  # as multilingual-e5-small: the build adds no pooler
    M3Model.from_pretrained(TINY_M3, heads="none").save_pretrained(base)
    trim = {
        k: v for k, v in load_file(str(base / "model.safetensors")).items() if not k.startswith("pooler.")
    }
    save_file(trim, str(base / "model.safetensors"))
    built = build_model(shipped, tmp_path / "built", base=base)
    assert not any(k.startswith("pooler.") for k in load_file(str(built / "model.safetensors")))
    texts = ["the river number 3", "a market story"]
    original = Embedder(M3Model.from_pretrained(run), device="cpu").encode(texts, sparse=True, colbert=True)
    rebuilt = Embedder(M3Model.from_pretrained(built), device="cpu").encode(texts, sparse=True, colbert=True)
    assert original.dense is not None and rebuilt.dense is not None
    np.testing.assert_allclose(rebuilt.dense, original.dense, atol=2e-3)  # adapters and heads ship in fp16


def test_package_refuses_a_run_without_adapters(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="lora"):
        package(TINY_M3, tmp_path / "out")


def test_the_built_model_stores_no_random_weights() -> None:
    """Everything in a built m3-small comes from the backbone file and the shipped files (no pooler initialised
    at random), so every build of one release gives the same index fingerprint."""
    built = resolve_model_path("m3-small")
    assert not any(k.startswith("pooler.") for k in load_file(str(built / "model.safetensors")))
