"""`trivec train reranker`: FlagEmbedding's group cross-entropy on the HF Trainer — the loss falls, the saved
model reloads as a `Reranker` and ranks its training positives first, resume works, bad input is one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import TINY_M3, TINY_RERANKER
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference.reranker import Reranker
from trivec.training.reranker import GroupCollator, GroupDataset, RerankerConfig, train_reranker
from trivec.training.reranker.train import load_groups

runner = CliRunner()


def losses(output: Path) -> list[float]:
    with (output / "log.csv").open(encoding="utf-8") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle) if row.get("loss")]


def config(tmp_path: Path, data: Path, **extra) -> RerankerConfig:
    values = {
        "model": str(TINY_RERANKER), "data": [str(data)], "output_dir": str(tmp_path / "out"), "group_size": 4,
        "max_length": 64, "batch_size": 4, "max_steps": 30, "learning_rate": 2e-3, "warmup_ratio": 0.0,
        "logging_steps": 5, "save_steps": 1000, "dropout": 0.0, "use_cpu": True,
    }  # fmt: skip
    values.update(extra)
    return RerankerConfig(**values)  # type: ignore[arg-type]


def test_loss_decreases_and_the_model_reloads(tmp_path: Path) -> None:
    rows = synthetic_rows(8)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    out = train_reranker(config(tmp_path, data))
    curve = losses(out)
    assert len(curve) >= 5 and curve[-1] < curve[0] * 0.5, curve
    reranker = Reranker.from_pretrained(out, device="cpu")
    for row in rows:
        scores = reranker.score([(row["query"], p) for p in (*row["pos"], *row["neg"])])
        assert int(np.argmax(scores)) == 0, (row["query"], scores)
    recipe = json.loads((out / "trivec_training.json").read_text(encoding="utf-8"))
    assert recipe["group_size"] == 4 and recipe["model"] == str(TINY_RERANKER)
    assert not list(out.glob(".final-*"))


def test_an_encoder_gets_a_new_head_and_the_instruction_is_saved(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(4))
    out = train_reranker(config(tmp_path, data, model=str(TINY_M3), max_steps=2, query_instruction="Q: "))
    reranker = Reranker.from_pretrained(out, device="cpu")
    assert reranker.query_instruction == "Q: "
    assert reranker.model.config.architectures == ["XLMRobertaForSequenceClassification"]
    assert reranker.model.config.num_labels == 1


def test_groups_draw_one_positive_and_distinct_negatives(tmp_path: Path) -> None:
    rows = synthetic_rows(3, negatives=2)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    examples = load_groups(config(tmp_path, data))
    dataset = GroupDataset(examples, group_size=5, seed=1)
    query, passages = dataset[0]
    assert query == rows[0]["query"] and passages[0] == rows[0]["pos"][0] and len(passages) == 5
    assert set(passages[1:]) <= set(rows[0]["neg"])  # two negatives repeated to fill four slots
    assert dataset[0] == dataset[0]
    dataset.epoch = 1
    reranker = Reranker.from_pretrained(TINY_RERANKER, device="cpu", max_length=64)
    batch = GroupCollator(reranker, 1)([dataset[0], dataset[1]])
    assert batch["input_ids"].shape[0] == 10
    expected = reranker.tokenize_pairs([(dataset[0][0], p) for p in dataset[0][1]]).input_ids
    for row, ids in enumerate(expected):
        assert batch["input_ids"][row, : len(ids)].tolist() == ids
        assert int(batch["attention_mask"][row].sum()) == len(ids)


def test_resume_from_the_last_checkpoint(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(8))
    args = [
        "train", "reranker", "-m", str(TINY_RERANKER), "-d", str(data), "-o", str(tmp_path / "out"),
        "--group-size", "3", "--max-length", "48", "--batch-size", "4", "--save-steps", "2", "--cpu",
    ]  # fmt: skip
    first = runner.invoke(app, [*args, "--max-steps", "2"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
    again = runner.invoke(app, [*args, "--max-steps", "4", "--resume", "last"])
    assert again.exit_code == 0, again.output
    state = json.loads((tmp_path / "out" / "checkpoint-4" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 4
    Reranker.from_pretrained(tmp_path / "out", device="cpu")


def test_bad_input(tmp_path: Path) -> None:
    rows = synthetic_rows(3)
    rows[1]["neg"] = []
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(
        InputError, match=r"train\.jsonl:2: field 'neg' is empty: reranker training needs negatives"
    ):
        train_reranker(config(tmp_path, data))
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="group_size must be at least 2"):
        train_reranker(config(tmp_path, data, group_size=1))
    for extra, needle in (
        (["--resume", "last"], "--resume last: no checkpoint-* folder"),
        (["--group-size", "1"], "--group-size must be at least 2"),
    ):
        result = runner.invoke(
            app,
            [
                "train",
                "reranker",
                "-m",
                str(TINY_RERANKER),
                "-d",
                str(data),
                "-o",
                str(tmp_path / "o2"),
                *extra,
            ],
        )
        lines = [line for line in result.output.splitlines() if line.startswith("trivec: error:")]
        assert result.exit_code == 2 and len(lines) == 1 and needle in lines[0], result.output


def test_lora_trains_adapters_and_head_and_saves_both(tmp_path: Path) -> None:
    """LoRA on an encoder: only adapters and the new head train; the merged model and `lora/` (adapters +
    head) are saved, and the adapters re-applied to the base encoder give the merged model's scores."""
    from trivec.models.cross_encoder import load_cross_encoder
    from trivec.models.lora import LORA_DIR, merge_adapter

    rows = synthetic_rows(4)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    settings = {"model": str(TINY_M3), "max_steps": 4, "lora_rank": 4, "head_learning_rate": 1e-2}
    out = train_reranker(config(tmp_path, data, max_examples_per_file=3, **settings))
    assert (out / LORA_DIR / "adapter_model.safetensors").is_file()
    merged = Reranker.from_pretrained(out, device="cpu", max_length=64)
    base, _, _ = load_cross_encoder(TINY_M3, init_head=True)
    rebuilt = merge_adapter(base, out / LORA_DIR)
    pairs = [(row["query"], p) for row in rows for p in (*row["pos"], *row["neg"])]
    again = Reranker(rebuilt, merged.tokenizer, device="cpu", max_length=64)
    np.testing.assert_allclose(again.score(pairs), merged.score(pairs), atol=1e-5)
    assert json.loads((out / "trivec_training.json").read_text(encoding="utf-8"))["lora_rank"] == 4


def test_lora_and_subsample_settings_are_checked(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(2))
    for bad in ({"lora_rank": 0}, {"max_examples_per_file": 0}, {"head_learning_rate": 0.0}):
        with pytest.raises(InputError, match="must be"):
            config(tmp_path, data, **bad).validate()
