"""End-to-end training on tiny-m3: resume equality, checkpoint layout and loading, logs, CLI errors."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from trivec.cli import app
from trivec.inference import Embedder
from trivec.models import M3Model
from trivec.training.arguments import build_config
from trivec.training.train import build_trainer, train_contrastive


class StopAt(TrainerCallback):
    """Interrupt training after `step` optimizer steps (as a crash or a time limit would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def weights(directory: Path) -> dict[str, torch.Tensor]:
    state = load_file(directory / "model.safetensors")
    for head in ("sparse_linear.pt", "colbert_linear.pt"):
        for key, value in torch.load(directory / head, weights_only=True).items():
            state[f"{head}:{key}"] = value
    return state


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """Unified M3 training with dropout on, 7 steps over 2+ epochs (3 batches per epoch), interrupted after
    step 2 and resumed from checkpoint-2: the same batches, dropout masks and optimizer state follow."""
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(12))
    extra = {
        "max_steps": 7,
        "dropout": None,  # the model's own 0.1: resuming must restore the random state too
        "unified_finetuning": True,
        "use_self_distill": True,
        "learning_rate": 1e-3,
        "save_strategy": "steps",
        "save_steps": 2,
    }
    full = build_config({}, quick_overrides(tmp_path / "a", [str(data)], **extra))
    train_contrastive(full)

    part = build_config({}, quick_overrides(tmp_path / "b", [str(data)], **extra))
    trainer = build_trainer(part)
    trainer.add_callback(StopAt(2))
    trainer.train()
    checkpoint = tmp_path / "b" / "out" / "checkpoint-2"
    assert (checkpoint / "optimizer.pt").is_file() and not (tmp_path / "b" / "out" / "checkpoint-4").exists()
    resumed = build_config({}, quick_overrides(tmp_path / "b", [str(data)], **extra))
    resumed.training.resume_from_checkpoint = str(checkpoint)
    train_contrastive(resumed)

    a, b = weights(tmp_path / "a" / "out"), weights(tmp_path / "b" / "out")
    start = torch.load(TINY_M3 / "pytorch_model.bin", weights_only=True)
    assert max(float((a[k] - start[k]).abs().max()) for k in start if k in a) > 1e-3
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0, msg=key)


def test_saved_model_loads_in_trivec_and_sentence_transformers(tmp_path: Path, rows_file: Path) -> None:
    overrides = quick_overrides(
        tmp_path, [str(rows_file)], max_steps=2, query_instruction="Q: ", learning_rate=1e-3
    )
    config = build_config({}, {**overrides, "report_to": ["tensorboard"]})
    out = train_contrastive(config)
    for name in ("config.json", "model.safetensors", "sparse_linear.pt", "colbert_linear.pt", "tokenizer.json",
                 "modules.json", "1_Pooling/config.json", "trivec_training.json", "log.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.glob(".final-*"))
    model = M3Model.from_pretrained(out, heads="require")
    assert model.prompts == {"query": "Q: "}  # the training instruction travels with the model as its prompt
    embedder = Embedder.from_pretrained(out, device="cpu")
    vector = embedder.encode(["what is the river number 1?"], prompt_name="query").dense
    sentence_transformers = pytest.importorskip("sentence_transformers")
    st = sentence_transformers.SentenceTransformer(str(out), device="cpu")
    st_vector = st.encode(["what is the river number 1?"], prompt_name="query", normalize_embeddings=True)
    assert float(abs(st_vector - vector).max()) < 1e-5
    with (out / "log.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {"step", "loss", "learning_rate", "grad_norm"} <= set(rows[0])
    assert [int(r["step"]) for r in rows if r.get("loss")] == [1, 2]
    assert list((out / "runs").rglob("events.out.tfevents.*"))  # TensorBoard


def test_dense_training_leaves_the_heads_alone_and_unified_trains_them(
    tmp_path: Path, rows_file: Path
) -> None:
    dense = train_contrastive(
        build_config(
            {},
            quick_overrides(
                tmp_path / "d", [str(rows_file)], max_steps=1, learning_rate=1e-2, warmup_steps=0
            ),
        )
    )
    original = torch.load(TINY_M3 / "sparse_linear.pt", weights_only=True)["weight"].float()
    assert torch.equal(torch.load(dense / "sparse_linear.pt", weights_only=True)["weight"], original)
    unified = train_contrastive(
        build_config(
            {},
            quick_overrides(
                tmp_path / "u",
                [str(rows_file)],
                max_steps=1,
                learning_rate=1e-2,
                warmup_steps=0,
                unified_finetuning=True,
            ),
        )
    )
    assert not torch.equal(torch.load(unified / "sparse_linear.pt", weights_only=True)["weight"], original)


# ---------------------------------------------------------------------------------------------- CLI
runner = CliRunner()


def cli_args(tmp_path: Path, data: str, *extra: str) -> list[str]:
    return [
        "train", "contrastive", "--model", str(TINY_M3), "--data", data, "--output", str(tmp_path / "out"),
        "--group-size", "3", "--batch-size", "4", "--set", "report_to=[]", "--set", "disable_tqdm=true",
        "--set", "save_strategy=no", *extra,
    ]  # fmt: skip


def test_cli_with_a_yaml_config_and_flag_overrides(tmp_path: Path, rows_file: Path) -> None:
    recipe = tmp_path / "train.yaml"
    recipe.write_text(
        "data:\n  train_group_size: 2\n  query_max_len: 16\nloss:\n  temperature: 0.05\n"
        "training:\n  max_steps: 1\n  logging_steps: 1\n  learning_rate: 1.0e-4\n",
        encoding="utf-8",
    )
    result = runner.invoke(
        app, [*cli_args(tmp_path, str(rows_file), "--config", str(recipe), "--temperature", "0.1")]
    )
    assert result.exit_code == 0, result.output
    recipe_saved = (tmp_path / "out" / "trivec_training.json").read_text(encoding="utf-8")
    assert '"temperature": 0.1' in recipe_saved and '"query_max_len": 16' in recipe_saved
    assert '"train_group_size": 3' in recipe_saved  # --group-size beats the YAML


def test_cli_bad_data_is_one_clear_line_and_writes_nothing(tmp_path: Path) -> None:
    rows = synthetic_rows(6)
    rows[4]["neg"] = ["fine", {"text": "not a string"}]
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    result = runner.invoke(app, cli_args(tmp_path, f"{data}"))
    assert result.exit_code == 2
    assert f"{data}:5: field 'neg[1]' must be a string, got dict" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.safetensors"))


def test_cli_rejects_unknown_arguments_and_missing_resume(tmp_path: Path, rows_file: Path) -> None:
    result = runner.invoke(app, cli_args(tmp_path, str(rows_file), "--set", "learnin_rate=1"))
    assert result.exit_code == 2 and "unknown argument(s) learnin_rate" in result.output
    result = runner.invoke(app, cli_args(tmp_path, str(rows_file), "--resume", "last"))
    assert result.exit_code == 2 and "no checkpoint-* folder" in result.output
