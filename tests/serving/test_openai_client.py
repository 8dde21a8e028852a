"""The official `openai` client against `/v1/embeddings` of a live server with the default model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from typer.testing import CliRunner

from tests.serving.conftest import API_KEY
from trivec import Embedder
from trivec.cli import app as cli_app
from trivec.serving import ServerConfig, ServerThread, create_app

TEXTS = [
    "A man is playing a guitar.",
    "The new movie is awesome and everybody should watch it.",
    "Dense retrieval maps a query and a passage to single vectors.",
    "北京是中国的首都。",
]


@pytest.fixture(scope="module")
def server(minilm: Embedder) -> Iterator[ServerThread]:
    config = ServerConfig(model="minilm-m3", served_model_name="all-MiniLM-L6-v2", api_key=API_KEY)
    with ServerThread(create_app(minilm, config)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def test_openai_client_vectors_equal_trivec_encode(
    client: openai.OpenAI, minilm: Embedder, tmp_path: Path
) -> None:
    # the client asks for base64 by default and decodes it itself
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
    got = np.array([item.embedding for item in response.data], dtype=np.float32)
    assert got.shape == (len(TEXTS), 384)
    assert response.model == "all-MiniLM-L6-v2"
    expected = minilm.encode(TEXTS)
    np.testing.assert_allclose(got, expected.dense, atol=1e-6)
    assert response.usage.prompt_tokens == response.usage.total_tokens == sum(expected.num_tokens)

    # the `trivec encode` command gives the same vectors
    source = tmp_path / "in.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli_app, ["encode", "-m", "all-MiniLM-L6-v2", "-i", str(source), "-o", str(out), "--dense", "-q"]
    )
    assert result.exit_code == 0, result.output
    cli_vectors = np.array([json.loads(line)["dense"] for line in out.read_text().splitlines()])
    np.testing.assert_allclose(got, cli_vectors, atol=1e-6)


def test_openai_client_float_format_single_string_and_dimensions(
    client: openai.OpenAI, minilm: Embedder
) -> None:
    expected = minilm.encode(TEXTS[:1]).dense[0]
    floats = client.embeddings.create(model="m", input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, expected, atol=1e-6)
    short = client.embeddings.create(model="m", input=TEXTS[0], dimensions=128)
    vector = np.array(short.data[0].embedding)
    assert vector.shape == (128,)
    np.testing.assert_allclose(vector, expected[:128] / np.linalg.norm(expected[:128]), atol=1e-6)


def test_openai_client_sees_errors(server: ServerThread, client: openai.OpenAI) -> None:
    wrong_key = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        wrong_key.embeddings.create(model="m", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="larger than the model's 384"):
        client.embeddings.create(model="m", input="x", dimensions=1000)
    with pytest.raises(openai.UnprocessableEntityError, match="token ids is not supported"):
        client.embeddings.create(model="m", input=[[101, 2023, 102]])
