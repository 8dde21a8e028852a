"""Prompts as sentence-transformers keeps them: read, validated, saved, selected, applied by `Embedder.encode`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_M3, TINY_PROMPTS
from trivec import CheckpointError, Embedder, M3Model
from trivec.errors import InputError
from trivec.models.prompts import PROMPTS_FILE, select_prompt

TEXTS = ["what is bge m3", "Der schnelle braune Fuchs."]


def write_st_config(directory: Path, body: object) -> None:
    (directory / PROMPTS_FILE).write_text(json.dumps(body), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- selection
def test_select_prompt_follows_sentence_transformers() -> None:
    prompts = {"query": "q: ", "document": "d: ", "sts": "s: "}
    assert select_prompt(prompts, None) == ""
    assert select_prompt(prompts, "sts") == "s: "  # the default prompt when no name is given
    assert select_prompt(prompts, "sts", "query") == "q: "
    assert select_prompt(prompts, "sts", "query", prompt="X: ") == "X: "  # an explicit prompt wins
    assert select_prompt(prompts, "sts", prompt="") == ""
    assert select_prompt({}, None, "query") == select_prompt({}, None, "document") == ""  # roles: no prompt
    assert select_prompt({"passage": "p: "}, None, "document") == "p: "  # as encode_document falls back
    with pytest.raises(InputError, match=r"unknown prompt name 'classification'.*'query', 'document', 'sts'"):
        select_prompt(prompts, None, "classification")


# ----------------------------------------------------------------------------------------------- files
def test_prompts_are_read_from_config_sentence_transformers(tiny_prompted_dir: Path) -> None:
    model = M3Model.from_pretrained(tiny_prompted_dir)
    assert model.prompts == TINY_PROMPTS and model.default_prompt_name is None
    assert M3Model.from_pretrained(TINY_M3).prompts == {}  # a model without prompts has none


def test_legacy_query_instruction_is_the_query_prompt(tiny_copy: Path) -> None:
    (tiny_copy / "trivec_config.json").write_text(json.dumps({"query_instruction": "Q: "}), encoding="utf-8")
    assert M3Model.from_pretrained(tiny_copy).prompts == {"query": "Q: "}
    write_st_config(tiny_copy, {"prompts": {"query": "query: ", "document": "passage: "}})
    assert M3Model.from_pretrained(tiny_copy).prompts == {"query": "query: ", "document": "passage: "}
    write_st_config(tiny_copy, {"prompts": {"document": "passage: "}})
    assert M3Model.from_pretrained(tiny_copy).prompts == {"document": "passage: ", "query": "Q: "}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompts": ["query: "]}, "prompts must be a JSON object"),
        ({"prompts": {"query": 1}}, "prompt 'query' must be a string, not int"),
        ({"prompts": {"query": "q: "}, "default_prompt_name": "document"}, "default_prompt_name 'document'"),
        ([1, 2], "must hold a JSON object"),
    ],
)
def test_bad_prompts_file_is_a_clear_error(tiny_copy: Path, body: object, message: str) -> None:
    write_st_config(tiny_copy, body)
    with pytest.raises(CheckpointError, match=message) as caught:
        M3Model.from_pretrained(tiny_copy)
    assert PROMPTS_FILE in str(caught.value)
    (tiny_copy / PROMPTS_FILE).write_text("{oops", encoding="utf-8")
    with pytest.raises(CheckpointError, match=f"cannot read .*{PROMPTS_FILE}"):
        M3Model.from_pretrained(tiny_copy)


def test_save_pretrained_round_trips_prompts_and_keeps_other_keys(tmp_path: Path) -> None:
    model = M3Model.from_pretrained(TINY_M3)
    model.prompts = {"query": "query: ", "document": "passage: ", "sts": "s: "}
    model.default_prompt_name = "sts"
    write_st_config(tmp_path, {"__version__": {"sentence_transformers": "3.0.0"}, "prompts": {"old": "x"}})
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / PROMPTS_FILE).read_text(encoding="utf-8"))
    assert saved == {
        "__version__": {"sentence_transformers": "3.0.0"},
        "prompts": {"query": "query: ", "document": "passage: ", "sts": "s: "},
        "default_prompt_name": "sts",
        "similarity_fn_name": "cosine",
    }
    assert not json.loads((tmp_path / "trivec_config.json").read_text(encoding="utf-8")).get(
        "query_instruction"
    )
    reloaded = M3Model.from_pretrained(tmp_path)
    assert reloaded.prompts == model.prompts and reloaded.default_prompt_name == "sts"


def test_saved_prompts_read_by_sentence_transformers(tmp_path: Path, tiny_prompted_dir: Path) -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    embedder = Embedder.from_pretrained(tiny_prompted_dir, device="cpu")
    embedder.model.save_pretrained(tmp_path)
    st_model = sentence_transformers.SentenceTransformer(str(tmp_path), device="cpu")
    assert st_model.prompts == TINY_PROMPTS
    for name in ("query", "document"):
        st_vectors = st_model.encode(TEXTS, prompt_name=name, convert_to_numpy=True)
        np.testing.assert_allclose(st_vectors, embedder.encode(TEXTS, prompt_name=name).dense, atol=1e-5)


# ----------------------------------------------------------------------------------------------- encoding
def test_encode_with_prompt_name_or_prompt_equals_the_prefixed_text(tiny_prompted_dir: Path) -> None:
    embedder = Embedder.from_pretrained(tiny_prompted_dir, device="cpu")
    plain = embedder.encode(TEXTS, sparse=True)  # no name, no default: no prompt
    by_name = embedder.encode(TEXTS, sparse=True, prompt_name="query")
    manual = embedder.encode(["query: " + t for t in TEXTS], sparse=True)
    np.testing.assert_array_equal(by_name.dense, manual.dense)
    assert [v.indices.tolist() for v in by_name.sparse or []] == [
        v.indices.tolist() for v in manual.sparse or []
    ]
    assert not np.allclose(plain.dense, by_name.dense)
    np.testing.assert_array_equal(
        embedder.encode(TEXTS, prompt_name="document").dense,
        embedder.encode(["passage: " + t for t in TEXTS]).dense,
    )
    np.testing.assert_array_equal(  # an explicit prompt wins over the name
        embedder.encode(TEXTS, prompt_name="query", prompt="").dense, plain.dense
    )
    with pytest.raises(InputError, match="unknown prompt name 'clustering'"):
        embedder.encode(TEXTS, prompt_name="clustering")


def test_embedder_prompts_override_the_model_and_default_applies(tiny_prompted_dir: Path) -> None:
    embedder = Embedder.from_pretrained(
        tiny_prompted_dir, device="cpu", prompts={"document": "", "sts": "s: "}, default_prompt_name="sts"
    )
    assert embedder.prompts == {"query": "query: ", "document": "", "sts": "s: "}
    assert embedder.model.prompts == TINY_PROMPTS  # the model keeps its own
    np.testing.assert_array_equal(
        embedder.encode(TEXTS).dense, embedder.encode(["s: " + t for t in TEXTS], prompt="").dense
    )
    np.testing.assert_array_equal(
        embedder.encode(TEXTS, prompt_name="document").dense, embedder.encode(TEXTS, prompt="").dense
    )
    with pytest.raises(InputError, match="default_prompt_name 'nope'"):
        Embedder(embedder.model, device="cpu", default_prompt_name="nope")
    with pytest.raises(InputError, match="prompt 'query' must be a string"):
        Embedder(embedder.model, device="cpu", prompts={"query": None})  # type: ignore[dict-item]


def test_score_gives_queries_and_passages_their_prompts(tiny_prompted_dir: Path) -> None:
    embedder = Embedder.from_pretrained(tiny_prompted_dir, device="cpu")
    scores = embedder.score("what is m3", ["M3 is an embedding model", "a fox"], modes=["dense", "sparse"])
    q = embedder.encode(["query: what is m3"], sparse=True, prompt="")
    p = embedder.encode(["passage: M3 is an embedding model", "passage: a fox"], sparse=True, prompt="")
    assert q.dense is not None and p.dense is not None
    np.testing.assert_allclose(scores["dense"], p.dense @ q.dense[0], atol=1e-6)
    pairs = embedder.score_pairs(
        [("what is m3", "a fox")], modes=["dense"], query_prompt="", document_prompt=""
    )
    plain = Embedder.from_pretrained(TINY_M3, device="cpu").score_pairs(
        [("what is m3", "a fox")], modes=["dense"]
    )
    np.testing.assert_allclose(pairs["dense"], plain["dense"], atol=1e-6)
