"""ONNX export (`trivec export onnx`) and the ONNX backend (`Embedder.from_pretrained(..., backend="onnx")`).

Round trips: tiny-m3 (XLM-R with both heads) and all-MiniLM-L6-v2 (BERT, dense only) are exported once per
module; the graph run in onnxruntime must give torch's outputs (max abs diff ≤ 1e-5 on dense, lexical
weights and ColBERT vectors), the int8 graph of all-MiniLM-L6-v2 a mean dense cosine ≥ 0.99 to float32.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from trivec import Embedder
from trivec.cli import app
from trivec.errors import CheckpointError, InputError, UnsupportedOutputError
from trivec.export import ExportError, export_onnx
from trivec.export import onnx as export_module
from trivec.inference.onnx_backend import (
    EXPORT_FORMAT,
    HIDDEN_OUTPUT,
    META_FORMAT,
    META_OUTPUTS,
    ONNX_CPU_BATCH_TOKENS,
    ONNX_DIR,
    ONNX_FILE,
    ONNX_INT8_FILE,
    OnnxForward,
)
from trivec.inference.sparse import SparseVector
from trivec.models.m3 import M3Model

TOLERANCE = 1e-5
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "How much protein should a female eat per day?",
]


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a failed command (exit 2, no traceback; progress/log lines may precede it)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("trivec: error: ")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.rstrip("\n").endswith(errors[0]), done.stderr  # the last thing printed
    return errors[0]


def lexical_dict(vector: SparseVector) -> dict[int, float]:
    return dict(zip(vector.indices.tolist(), vector.values.tolist(), strict=True))


def sparse_diff(a: list[SparseVector], b: list[SparseVector]) -> float:
    """Largest weight difference over the union of token ids (a missing id weighs 0)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        dx, dy = lexical_dict(x), lexical_dict(y)
        for token in set(dx) | set(dy):
            worst = max(worst, abs(dx.get(token, 0.0) - dy.get(token, 0.0)))
    return worst


def colbert_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [x.shape for x in a] == [y.shape for y in b]
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def assert_same_outputs(a: Any, b: Any, tolerance: float = TOLERANCE) -> dict[str, float]:
    """ONNX vs torch: dense, lexical weights and ColBERT rows within `tolerance`; returns the differences."""
    diffs = {"dense": float(np.abs(a.dense - b.dense).max())}
    if a.sparse is not None:
        diffs["sparse"] = sparse_diff(a.sparse, b.sparse)
    if a.colbert is not None:
        diffs["colbert"] = colbert_diff(a.colbert, b.colbert)
    assert a.num_tokens == b.num_tokens
    assert all(value <= tolerance for value in diffs.values()), diffs
    return diffs


def texts_of_tiny() -> list[str]:
    reference = json.loads((TINY_M3 / "reference.json").read_text(encoding="utf-8"))
    return [s["text"] for s in reference["sentences"]] + ["lexical " * 700]  # one past 512 tokens (MCLS)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-m3 exported through the command line, with the int8 graph."""
    target = tmp_path_factory.mktemp("onnx") / f"{TINY_M3.name}-onnx"  # as benchmarks/encode.py names it
    done = invoke("export", "onnx", "--model", str(TINY_M3), "--output", str(target), "--quantize", "int8")
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture(scope="module")
def minilm_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 (dense only) exported through the Python API, with the int8 graph."""
    return export_onnx("all-MiniLM-L6-v2", tmp_path_factory.mktemp("onnx") / "minilm-onnx", quantize="int8")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_export: Path) -> Embedder:
    return Embedder.from_pretrained(tiny_export, backend="onnx")


# ---------------------------------------------------------------------- the exported directory
def test_export_writes_a_complete_model_directory(tiny_export: Path) -> None:
    for name in (
        "config.json",
        "tokenizer.json",
        "config_sentence_transformers.json",
        "modules.json",
        "1_Pooling/config.json",
        "sparse_linear.pt",
        "colbert_linear.pt",
        "trivec_config.json",
        f"{ONNX_DIR}/{ONNX_FILE}",
        f"{ONNX_DIR}/{ONNX_INT8_FILE}",
    ):
        assert (tiny_export / name).is_file(), name
    assert not [p.name for p in tiny_export.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_graph_inputs_outputs_and_metadata(tiny_export: Path) -> None:
    proto = onnx.load(str(tiny_export / ONNX_DIR / ONNX_FILE))
    inputs = {i.name: i for i in proto.graph.input}
    assert list(inputs) == ["input_ids", "attention_mask"]
    for value in inputs.values():
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["batch", "sequence"]  # both axes dynamic
    outputs = {o.name: o for o in proto.graph.output}
    assert list(outputs) == [HIDDEN_OUTPUT, "dense_vecs", "sparse_vecs", "colbert_vecs"]
    shape = {
        name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        for name, o in outputs.items()
    }
    assert shape["dense_vecs"] == ["batch", 64]
    assert shape["sparse_vecs"] == ["batch", "sequence"]
    assert shape["colbert_vecs"] == ["batch", "sequence_after_first", 64]
    assert shape[HIDDEN_OUTPUT] == ["batch", "sequence", 64]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["trivec.outputs"] == "dense,sparse,colbert"
    assert meta["trivec.pooling"] == "cls" and meta["trivec.normalize"] == "true"
    assert meta[META_FORMAT] == str(EXPORT_FORMAT)


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def test_encoders_are_traced_with_eager_attention(tiny_export: Path) -> None:
    """Both graphs come from the eager attention trace: no SDPA masking (`IsNaN` guards a `Where` over every
    score tensor), the int8 one with int8 matmuls; plain ONNX ops (no onnxruntime-only fused op written)."""
    plain, int8 = (
        op_types(tiny_export / ONNX_DIR / ONNX_FILE),
        op_types(tiny_export / ONNX_DIR / ONNX_INT8_FILE),
    )
    assert "IsNaN" not in plain | int8 and {"Softmax", "MatMul"} <= plain
    assert "MatMulInteger" in int8 and "DynamicQuantizeLinear" in int8
    assert not {"Attention", "QAttention", "SkipLayerNormalization"} & (plain | int8)


def test_export_leaves_the_models_attention_as_it_was(tmp_path: Path) -> None:
    """The backbone is switched to eager attention for the trace only (the export may get the caller's own
    model, whose backbone it then traces as it is)."""
    model = M3Model.from_pretrained(TINY_M3)
    before = model.backbone.config._attn_implementation
    assert before != "eager"
    export_onnx(model, tmp_path / "out")
    assert model.backbone.config._attn_implementation == before
    with export_module.eager_attention(model.backbone):
        assert model.backbone.config._attn_implementation == "eager"
    assert model.backbone.config._attn_implementation == before


def test_onnx_cpu_budget_is_its_own(tiny_export: Path) -> None:
    """On the CPU an ONNX encoder batches `ONNX_CPU_BATCH_TOKENS` (small batches keep onnxruntime's
    attention tensors in cache); a budget given is kept."""
    assert Embedder.from_pretrained(tiny_export, backend="onnx").batch_tokens == ONNX_CPU_BATCH_TOKENS
    given = Embedder.from_pretrained(tiny_export, backend="onnx", batch_tokens=4096)
    assert given.batch_tokens == 4096


def test_torch_still_loads_the_exported_directory(tiny_export: Path, tiny: Embedder) -> None:
    texts = texts_of_tiny()[:4]
    a = tiny.encode(texts, sparse=True, colbert=True)
    b = Embedder.from_pretrained(tiny_export, device="cpu").encode(texts, sparse=True, colbert=True)
    assert_same_outputs(a, b, tolerance=0.0)


# ---------------------------------------------------------------------- parity with torch
def test_tiny_onnx_matches_torch(tiny_onnx: Embedder, tiny: Embedder) -> None:
    texts = texts_of_tiny()
    a = tiny.encode(texts, sparse=True, colbert=True)
    b = tiny_onnx.encode(texts, sparse=True, colbert=True)
    assert_same_outputs(a, b)
    assert tiny_onnx.backend == "onnx" and tiny.backend == "torch"
    # lexical weights per token id, special ids dropped; ColBERT: one row per token after <s>
    specials = tiny.model.special_token_ids
    assert b.sparse is not None and b.colbert is not None
    assert all(not (set(v.indices.tolist()) & specials) for v in b.sparse)
    assert [c.shape[0] for c in b.colbert] == [n - 1 for n in b.num_tokens]


def test_tiny_onnx_mcls_matches_torch(tiny_onnx: Embedder, tiny: Embedder) -> None:
    texts = texts_of_tiny()
    a = tiny.encode(texts, sparse=True, colbert=True, mcls=True)
    b = tiny_onnx.encode(texts, sparse=True, colbert=True, mcls=True)
    assert_same_outputs(a, b)


def test_onnx_token_budget_batches_give_the_same_results(tiny_onnx: Embedder) -> None:
    texts = texts_of_tiny()
    whole = tiny_onnx.encode(texts, sparse=True, colbert=True, batch_tokens=100_000)
    small = tiny_onnx.encode(texts, sparse=True, colbert=True, batch_tokens=16)  # one text per batch
    assert_same_outputs(whole, small)


def test_onnx_scores_match_torch(tiny_onnx: Embedder, tiny: Embedder) -> None:
    passages = texts_of_tiny()[1:5]
    a = tiny.score("what is BGE M3?", passages)
    b = tiny_onnx.score("what is BGE M3?", passages)
    assert set(a) == set(b)
    for mode in a:
        np.testing.assert_allclose(a[mode], b[mode], atol=1e-5)


def test_pooling_given_at_load_time_is_computed_from_the_hidden_states(tiny_export: Path) -> None:
    """The graph's dense_vecs are CLS-pooled; asked for mean pooling, the backend pools last_hidden_state."""
    texts = texts_of_tiny()[:5]
    a = Embedder.from_pretrained(tiny_export, pooling="mean", device="cpu").encode(texts)
    onnx_embedder = Embedder.from_pretrained(tiny_export, pooling="mean", backend="onnx")
    assert "dense" not in onnx_embedder._forward.graph_outputs  # type: ignore[attr-defined]
    assert_same_outputs(a, onnx_embedder.encode(texts))


@pytest.mark.parametrize("listed", ["dense", None])
def test_outputs_missing_from_the_graph_come_from_the_hidden_states(
    tiny_export: Path, tiny: Embedder, tmp_path: Path, listed: str | None
) -> None:
    """A graph that lists only dense (or, like another exporter's, no trivec metadata at all): sparse and
    ColBERT are computed from last_hidden_state with the directory's heads."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_export, copy)
    path = copy / ONNX_DIR / ONNX_FILE
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != META_OUTPUTS]
    del proto.metadata_props[:]
    for key, value in kept if listed is not None else []:
        proto.metadata_props.add(key=key, value=value)
    if listed is not None:
        proto.metadata_props.add(key=META_OUTPUTS, value=listed)
    onnx.save_model(proto, str(path))
    embedder = Embedder.from_pretrained(copy, backend="onnx")
    forward = embedder._forward
    assert isinstance(forward, OnnxForward)
    assert forward.graph_outputs == (frozenset({"dense"}) if listed else frozenset())
    texts = texts_of_tiny()[:5]
    assert_same_outputs(
        tiny.encode(texts, sparse=True, colbert=True), embedder.encode(texts, sparse=True, colbert=True)
    )


def test_minilm_onnx_matches_torch(minilm_export: Path, minilm: Embedder) -> None:
    proto = onnx.load(str(minilm_export / ONNX_DIR / ONNX_FILE), load_external_data=False)
    assert [o.name for o in proto.graph.output] == [HIDDEN_OUTPUT, "dense_vecs"]  # dense only
    onnx_embedder = Embedder.from_pretrained(minilm_export, backend="onnx")
    assert not onnx_embedder.has_sparse
    assert_same_outputs(minilm.encode(SENTENCES), onnx_embedder.encode(SENTENCES))
    with pytest.raises(UnsupportedOutputError, match="no sparse"):
        onnx_embedder.encode(SENTENCES, sparse=True)


def test_minilm_int8_is_close_to_float32(minilm_export: Path, minilm: Embedder) -> None:
    int8 = Embedder.from_pretrained(minilm_export, backend="onnx", onnx_file=ONNX_INT8_FILE)
    full = minilm.encode(SENTENCES).dense
    quantized = int8.encode(SENTENCES).dense
    assert full is not None and quantized is not None
    cosine = np.sum(full * quantized, axis=1)
    assert float(cosine.mean()) >= 0.99, cosine
    assert (minilm_export / ONNX_DIR / ONNX_INT8_FILE).stat().st_size < (
        minilm_export / ONNX_DIR / ONNX_FILE
    ).stat().st_size / 3


def test_tiny_int8_graph_loads_with_all_outputs(tiny_export: Path) -> None:
    int8 = Embedder.from_pretrained(tiny_export, backend="onnx", onnx_file=ONNX_INT8_FILE)
    forward = int8._forward
    assert isinstance(forward, OnnxForward)  # the quantiser keeps the metadata: all outputs from the graph
    assert forward.graph_outputs == frozenset({"dense", "sparse", "colbert"})
    out = int8.encode(texts_of_tiny()[:3], sparse=True, colbert=True)
    assert out.dense is not None and np.isfinite(out.dense).all()
    np.testing.assert_allclose(np.linalg.norm(out.dense, axis=1), 1.0, atol=1e-5)
    assert out.colbert is not None and [c.shape[0] for c in out.colbert] == [n - 1 for n in out.num_tokens]


def test_sentence_transformers_finds_the_graph_where_its_onnx_backend_looks(minilm_export: Path) -> None:
    """sentence-transformers' ONNX loader resolves `onnx/model.onnx` in the exported directory (no export
    of its own); loading it also needs optimum-onnx (see the next test)."""
    utils = pytest.importorskip("sentence_transformers.backend.utils")
    export, kwargs = utils.backend_should_export(minilm_export, True, {}, ONNX_FILE, "*.onnx", "ONNX")
    assert export is False
    assert kwargs["subfolder"] == ONNX_DIR and kwargs["file_name"] == ONNX_FILE
    _, int8 = utils.backend_should_export(
        minilm_export, True, {"file_name": ONNX_INT8_FILE}, ONNX_FILE, "*.onnx", "ONNX"
    )
    assert int8["subfolder"] == ONNX_DIR and int8["file_name"] == ONNX_INT8_FILE


def test_sentence_transformers_onnx_backend_matches(minilm_export: Path, minilm: Embedder) -> None:
    st = pytest.importorskip("sentence_transformers")
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception as exc:  # not installed, or (optimum-onnx 0.1) not importable with transformers 5
        pytest.skip(f"sentence-transformers' ONNX backend needs optimum-onnx, not usable here: {exc}")
    model = st.SentenceTransformer(str(minilm_export), backend="onnx", device="cpu")
    theirs = model.encode(SENTENCES, normalize_embeddings=False)
    ours = minilm.encode(SENTENCES).dense
    assert float(np.abs(np.asarray(theirs) - ours).max()) <= TOLERANCE


# ---------------------------------------------------------------------- command line
def test_encode_and_score_with_backend_onnx(tiny_export: Path, tiny: Embedder, tmp_path: Path) -> None:
    texts = texts_of_tiny()[:3]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = invoke(
        "encode", "-m", str(tiny_export), "-i", str(source), "-o", str(out),
        "--dense", "--sparse", "--colbert", "--backend", "onnx",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = tiny.encode(texts, sparse=True, colbert=True)
    np.testing.assert_allclose([r["dense"] for r in rows], expected.dense, atol=TOLERANCE)
    got_sparse = [SparseVector.from_dict(r["sparse"]) for r in rows]
    assert expected.sparse is not None and sparse_diff(got_sparse, expected.sparse) <= TOLERANCE
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": texts[0], "passage": texts[1]}) + "\n", encoding="utf-8")
    scored = invoke(
        "score", "-m", str(tiny_export), "-p", str(pairs), "--backend", "onnx", "--onnx-file", ONNX_INT8_FILE
    )
    assert scored.returncode == 0, scored.stderr
    assert set(json.loads(scored.stdout)) >= {"dense", "sparse", "colbert"}


def test_index_built_with_onnx_searches_with_either_backend(tiny_export: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    docs = texts_of_tiny()[:6]
    corpus.write_text(
        "".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(docs)), "utf-8"
    )
    index = tmp_path / "ix"
    built = invoke(
        "index",
        "build",
        "-m",
        str(tiny_export),
        "-c",
        str(corpus),
        "-x",
        str(index),
        "--model-backend",
        "onnx",
    )
    assert built.returncode == 0, built.stderr
    hits = {}
    for backend in ("torch", "onnx"):
        done = invoke("search", "-x", str(index), docs[2], "--json", "--backend", backend, "-k", "3")
        assert done.returncode == 0, done.stderr
        hits[backend] = json.loads(done.stdout)["hits"]
    # the exported directory is the same model as the one it came from (same index fingerprint)
    done = invoke("search", "-x", str(index), docs[2], "--json", "-m", str(TINY_M3), "-k", "3")
    assert done.returncode == 0, done.stderr
    hits["source"] = json.loads(done.stdout)["hits"]
    assert (
        [h["id"] for h in hits["torch"]]
        == [h["id"] for h in hits["onnx"]]
        == [h["id"] for h in hits["source"]]
    )
    assert hits["onnx"][0]["id"] == "2"


def test_serve_with_backend_onnx(tiny_export: Path, tiny: Embedder) -> None:
    import httpx

    from trivec.serving import ServerConfig, ServerThread, build_app

    texts = texts_of_tiny()[:3]
    app = build_app(ServerConfig(model=str(tiny_export), backend="onnx", onnx_file=ONNX_FILE))
    with ServerThread(app) as running:
        body = {"texts": texts, "sparse": True, "colbert": True}
        data = httpx.post(f"{running.url}/encode", json=body, timeout=120).json()["data"]
    expected = tiny.encode(texts, sparse=True, colbert=True)
    assert expected.sparse is not None and expected.colbert is not None
    np.testing.assert_allclose([d["dense"] for d in data], expected.dense, atol=TOLERANCE)
    got_sparse = [SparseVector.from_dict(d["sparse"]) for d in data]
    assert sparse_diff(got_sparse, expected.sparse) <= TOLERANCE
    assert (
        colbert_diff([np.asarray(d["colbert"], dtype=np.float32) for d in data], expected.colbert)
        <= TOLERANCE
    )


def test_eval_with_backend_onnx_scores_as_torch(tiny_export: Path, tmp_path: Path) -> None:
    from tests.conftest import DATA
    from tests.evaluation.conftest import cut_retrieval

    task = cut_retrieval(DATA / "cranfield", tmp_path / "cran-small", n_queries=4, n_noise=20)
    scores = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        done = invoke(
            "eval", "-m", str(tiny_export), "--task-dir", str(task), "--modes", "dense,sparse,colbert",
            "--language", "en", "-o", str(out), "--quiet", "--backend", backend,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads((out / "cran-small.json").read_text(encoding="utf-8"))
        scores[backend] = result["scores"]
        # the graph is recorded with the results (an int8 run is not taken for a float32 one, nor resumed as one)
        expected = "float32" if backend == "torch" else "onnx model.onnx"
        assert result["settings"]["dtype"] == result["model"]["dtype"] == expected
        assert result["model"]["backend"] == backend
    assert set(scores["torch"]) == set(scores["onnx"]) == {"dense", "sparse", "colbert"}
    compared = 0
    for mode, metrics in scores["torch"].items():
        for name, value in metrics.items():
            if isinstance(value, float):
                assert abs(value - scores["onnx"][mode][name]) <= 1e-4, (mode, name)
                compared += 1
    assert compared >= 3  # ndcg@10 and the rest, per mode


# ---------------------------------------------------------------------- bad input: one line, nothing written
def test_backend_onnx_without_a_graph_names_the_missing_file(tmp_path: Path) -> None:
    missing = TINY_M3 / ONNX_DIR / ONNX_FILE
    with pytest.raises(CheckpointError, match=str(missing)):
        Embedder.from_pretrained(TINY_M3, backend="onnx")
    source = tmp_path / "in.txt"
    source.write_text("text\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    line = one_line_error(
        invoke("encode", "-m", str(TINY_M3), "-i", str(source), "-o", str(out), "--backend", "onnx")
    )
    assert str(missing) in line and "no such file" in line
    assert not out.exists()
    line = one_line_error(
        invoke(
            "encode",
            "-m",
            str(TINY_M3),
            "-i",
            str(source),
            "-o",
            str(out),
            "--backend",
            "onnx",
            "--onnx-file",
            "nope.onnx",
        )
    )
    assert str(TINY_M3 / ONNX_DIR / "nope.onnx") in line


def test_damaged_graph_is_a_one_line_error_naming_the_file(tiny_export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "damaged"
    shutil.copytree(tiny_export, copy)
    path = copy / ONNX_DIR / ONNX_FILE
    path.write_bytes(path.read_bytes()[:5000])  # truncated
    with pytest.raises(CheckpointError, match="cannot load the ONNX graph"):
        Embedder.from_pretrained(copy, backend="onnx")
    source = tmp_path / "in.txt"
    source.write_text("text\n", encoding="utf-8")
    line = one_line_error(
        invoke(
            "encode", "-m", str(copy), "-i", str(source), "-o", str(tmp_path / "o.jsonl"), "--backend", "onnx"
        )
    )
    assert str(path) in line
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_backend_options(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="backend must be one of torch, onnx"):
        Embedder.from_pretrained(TINY_M3, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="onnx_file applies to backend='onnx'"):
        Embedder.from_pretrained(TINY_M3, onnx_file=ONNX_INT8_FILE)
    with pytest.raises(InputError, match="dtype"):
        Embedder.from_pretrained(TINY_M3, backend="onnx", dtype="bfloat16")
    source = tmp_path / "in.txt"
    source.write_text("text\n", encoding="utf-8")
    base = ("encode", "-m", str(TINY_M3), "-i", str(source), "-o", str(tmp_path / "o.jsonl"))
    assert "--backend must be one of torch, onnx" in one_line_error(invoke(*base, "--backend", "tf"))
    assert "--onnx-file applies to --backend onnx" in one_line_error(invoke(*base, "--onnx-file", "x.onnx"))
    line = one_line_error(invoke("serve", "-m", str(TINY_M3), "--backend", "tf"))
    assert "--backend must be one of torch, onnx, got 'tf'" in line  # the same words as every command


def test_export_of_heads_the_model_lacks_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(UnsupportedOutputError, match="no sparse head"):
        export_onnx("all-MiniLM-L6-v2", target, outputs="dense,sparse")
    line = one_line_error(
        invoke("export", "onnx", "-m", "all-MiniLM-L6-v2", "-o", str(target), "--outputs", "dense,colbert")
    )
    assert "no colbert head" in line
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--opset", "9"), "--opset must be an integer from 14 to 20, got 9"),
        (("--quantize", "int4"), "--quantize must be one of int8, got 'int4'"),
        (("--outputs", "dense,lexical"), "--outputs must name some of dense, sparse, colbert"),
    ],
)
def test_export_option_errors(tmp_path: Path, options: tuple[str, ...], message: str) -> None:
    target = tmp_path / "out"
    line = one_line_error(invoke("export", "onnx", "-m", str(TINY_M3), "-o", str(target), *options))
    assert message in line
    assert not target.exists()


def test_export_target_checks(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine", encoding="utf-8")
    line = one_line_error(invoke("export", "onnx", "-m", str(TINY_M3), "-o", str(taken)))
    assert "exists and is not empty (--overwrite replaces it)" in line
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    assert "is a file" in one_line_error(invoke("export", "onnx", "-m", str(TINY_M3), "-o", str(a_file)))
    assert (taken / "keep.txt").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_export_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overwrite: bool
) -> None:
    """A graph that does not reproduce torch fails the export: no target, no staging directory, and a
    directory it would replace stays as it was."""

    def broken_check(*args: Any, **kwargs: Any) -> None:
        raise ExportError("the exported graph's dense output differs from torch's by 1.0e+00")

    monkeypatch.setattr(export_module, "_check_graph", broken_check)
    target = tmp_path / "nested" / "out"
    if overwrite:
        target.mkdir(parents=True)
        (target / "old.txt").write_text("old", encoding="utf-8")
    line = one_line_error(
        invoke(
            "export", "onnx", "-m", str(TINY_M3), "-o", str(target), *(["--overwrite"] if overwrite else [])
        )
    )
    assert "differs from torch's" in line
    if overwrite:
        assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
        assert [p.name for p in target.parent.iterdir()] == ["out"]
    else:
        assert list(tmp_path.iterdir()) == []  # the parent folders it created are gone too


def test_export_with_only_dense_outputs(tmp_path: Path) -> None:
    target = tmp_path / "dense-only"
    done = invoke(
        "export", "onnx", "-m", str(TINY_M3), "-o", str(target), "--outputs", "dense", "--opset", "18"
    )
    assert done.returncode == 0, done.stderr
    proto = onnx.load(str(target / ONNX_DIR / ONNX_FILE))
    assert [o.name for o in proto.graph.output] == [HIDDEN_OUTPUT, "dense_vecs"]
    assert {p.key: p.value for p in proto.metadata_props}[META_OUTPUTS] == "dense"
    assert any(o.domain in ("", "ai.onnx") and o.version == 18 for o in proto.opset_import)


# ---------------------------------------------------------------------- benchmark rows (no timing)
def test_benchmark_onnx_rows_run_on_a_tiny_input(tiny_export: Path, tmp_path: Path) -> None:
    """benchmarks/encode.py's ONNX rows: the export is reused, both rows run through the benchmark's trivec
    side, their outputs compare to the torch row's, and the table renders them."""
    import sys

    from benchmarks import encode as bench

    assert bench.onnx_export_dir(TINY_M3, cache=tiny_export.parent) == tiny_export  # exported once, reused
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(texts_of_tiny()[:4]), encoding="utf-8")
    shape = bench.Shape(layers=2, hidden=64, heads=4, intermediate=128)
    section = bench.Section(
        "b", "tiny", str(TINY_M3), "m3", texts, ("dense", "sparse", "colbert"), 512, shape
    )
    job = {"warmup": 1, "repeats": 1}
    runs = [bench.Run(section, "trivec", "fp32, default budget", dict(job))]
    runs += bench.onnx_runs(section, tiny_export, job)
    assert [r.label for r in runs[1:]] == ["ONNX fp32, default budget", "ONNX int8, default budget"]
    for index, run in enumerate(runs):
        bench.run_side(run, Path(sys.executable), 1, tmp_path, index)
        assert run.metrics.get("times"), run.metrics
    assert [r.metrics["backend"] for r in runs] == ["torch", "onnx", "onnx"]
    assert runs[2].metrics["onnx_file"] == ONNX_INT8_FILE
    for run in runs[1:]:
        run.diff = bench.compare_outputs(runs[0].metrics["outputs_file"], run.metrics["outputs_file"])
    assert max(runs[1].diff[k] for k in ("dense", "sparse", "colbert")) <= TOLERANCE
    table = bench.render_table(runs, {"float32": 100.0})
    assert "ONNX int8" in table and "min cos" in table


def test_benchmark_exports_again_when_the_cached_graph_is_of_an_older_format(
    tiny_export: Path, tmp_path: Path
) -> None:
    """benchmarks/encode.py times what the export writes now: a cached export of an older `EXPORT_FORMAT`
    is replaced."""
    from benchmarks import encode as bench

    cached = tmp_path / tiny_export.name
    shutil.copytree(tiny_export, cached)
    graph = cached / ONNX_DIR / ONNX_FILE
    proto = onnx.load(str(graph))
    for prop in proto.metadata_props:
        if prop.key == META_FORMAT:
            prop.value = "1"
    onnx.save_model(proto, str(graph))
    assert bench.onnx_export_dir(TINY_M3, cache=tmp_path) == cached
    meta = {p.key: p.value for p in onnx.load(str(graph)).metadata_props}
    assert meta[META_FORMAT] == str(EXPORT_FORMAT)


@pytest.mark.slow
def test_multilingual_e5_small_onnx_matches_torch(tmp_path: Path) -> None:
    target = export_onnx("multilingual-e5-small", tmp_path / "me5")
    torch_embedder = Embedder.from_pretrained("multilingual-e5-small", device="cpu")
    onnx_embedder = Embedder.from_pretrained(target, backend="onnx")
    texts = [
        *SENTENCES,
        "Wie viel Protein braucht ein Mensch am Tag?",
        "人は一日にどれくらいのタンパク質が必要ですか",
    ]
    assert_same_outputs(
        torch_embedder.encode(texts, prompt_name="query"), onnx_embedder.encode(texts, prompt_name="query")
    )


def test_dtype_auto_runs_the_graph_as_exported(tiny_export: Path) -> None:
    """`dtype="auto"` (what a command may pass by default) is float32 on the ONNX backend, not an error."""
    texts = texts_of_tiny()[:3]
    auto = Embedder.from_pretrained(tiny_export, backend="onnx", dtype="auto")
    plain = Embedder.from_pretrained(tiny_export, backend="onnx")
    assert np.array_equal(auto.encode(texts).dense, plain.encode(texts).dense)
