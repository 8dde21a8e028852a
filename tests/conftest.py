"""Shared fixtures: paths to ../shared and session-scoped models (loading is the slow part)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from trivec import Embedder
from trivec.inference import scoring
from trivec.retrieval import sparse_scorer

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIVEC_SHARED", REPO.parent / "shared"))
TINY_M3 = SHARED / "fixtures" / "tiny-m3"
TINY_RERANKER = SHARED / "fixtures" / "tiny-reranker"
MINILM_REFERENCE = SHARED / "fixtures" / "minilm" / "reference.json"
XLMR_TOKENIZER = SHARED / "fixtures" / "xlmr-tokenizer"
DATA = SHARED / "data"
# The commands' outputs are compared with float32 references here: their default precision (`--dtype auto`,
# bf16 on AMX CPUs) is set to float32 for the tests, in-process and in the commands they start;
# tests/inference/test_precision.py checks `auto` itself.
os.environ.setdefault("TRIVEC_DTYPE", "float32")


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels() -> None:
    """Compile the numba kernels once, up front (≈ 2 s on a fresh clone, then cached on disk): otherwise the
    first hypothesis example that reaches one pays the compile against its deadline."""
    sparse_scorer.warm_up()
    scoring.warm_up()


@pytest.fixture(scope="session")
def tiny_reference() -> dict[str, Any]:
    return json.loads((TINY_M3 / "reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny() -> Embedder:
    """The tiny BGE-M3-layout checkpoint, fp32 on CPU."""
    return Embedder.from_pretrained(TINY_M3, device="cpu")


TINY_PROMPTS = {"query": "query: ", "document": "passage: "}


@pytest.fixture(scope="session")
def tiny_prompted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-m3 with multilingual-e5's prompts in its `config_sentence_transformers.json` (other files linked)."""
    target = tmp_path_factory.mktemp("tiny-prompted")
    for path in TINY_M3.iterdir():
        if path.name != "config_sentence_transformers.json":
            (target / path.name).symlink_to(path.resolve())
    (target / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": TINY_PROMPTS, "default_prompt_name": None}), encoding="utf-8"
    )
    return target


@pytest.fixture()
def tiny_copy(tmp_path: Path) -> Path:
    """A writable copy of the tiny-m3 checkpoint (the fixture's files are read-only)."""
    target = tmp_path / "tiny"
    shutil.copytree(TINY_M3, target)
    for path in target.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    return target


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """all-MiniLM-L6-v2 as published (`all-MiniLM-L6-v2`: minilm-m3 without heads): BERT, mean pooling, dense only."""
    return Embedder.from_pretrained("all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="session")
def tiny_texts(tiny_reference: dict[str, Any]) -> dict[str, str]:
    texts = {s["id"]: s["text"] for s in tiny_reference["sentences"]}
    texts.update(tiny_reference["extra_passages"])
    return texts
