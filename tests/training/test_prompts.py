"""Training and prompts: instructions default to the model's prompts; the model keeps what it was trained with."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from trivec.cli import app
from trivec.training.arguments import build_config
from trivec.training.train import build_trainer, trained_prompts


def first_batch(config: object) -> tuple[list[str], list[str]]:
    trainer = build_trainer(config)  # type: ignore[arg-type]
    dataset = trainer.train_dataset
    dataset.set_epoch(0)  # type: ignore[union-attr]
    batch = dataset[0]  # type: ignore[index]
    return batch.queries, batch.passages


def test_instructions_default_to_the_model_prompts(
    tmp_path: Path, rows_file: Path, tiny_prompted_dir: Path
) -> None:
    config = build_config({}, quick_overrides(tmp_path, [str(rows_file)], model=str(tiny_prompted_dir)))
    queries, passages = first_batch(config)
    assert all(q.startswith("query: ") for q in queries)
    assert all(p.startswith("passage: ") for p in passages)
    assert (config.data.query_instruction, config.data.passage_instruction) == ("query: ", "passage: ")
    assert trained_prompts(config, {"query": "query: ", "document": "passage: "}) == {
        "query": "query: ",
        "document": "passage: ",
    }


def test_given_instructions_win_and_become_the_saved_prompts(
    tmp_path: Path, rows_file: Path, tiny_prompted_dir: Path
) -> None:
    overrides = quick_overrides(
        tmp_path,
        [str(rows_file)],
        model=str(tiny_prompted_dir),
        query_instruction="Q: ",
        passage_instruction="",
    )
    config = build_config({}, overrides)
    queries, passages = first_batch(config)
    assert all(q.startswith("Q: ") for q in queries)
    assert not any(p.startswith("passage: ") for p in passages)
    model_prompts = {"query": "query: ", "document": "passage: ", "sts": "s: "}
    assert trained_prompts(config, model_prompts) == {"query": "Q: ", "document": "", "sts": "s: "}
    config.data.query_instruction_format = "<{}> {}"  # not a prefix: no prompt can say what the model saw
    assert trained_prompts(config, model_prompts) == model_prompts


def test_a_model_without_prompts_trains_and_saves_none(tmp_path: Path, rows_file: Path) -> None:
    config = build_config({}, quick_overrides(tmp_path, [str(rows_file)]))
    queries, _ = first_batch(config)
    assert queries[0].startswith("what is the")
    assert trained_prompts(config, {}) == {}


def test_mine_gives_queries_and_passages_their_prompts(tmp_path: Path, tiny_prompted_dir: Path) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", synthetic_rows(12, negatives=4))

    def mine(name: str, model: Path, *flags: str) -> str:
        out = tmp_path / f"{name}.jsonl"
        args = [
            "mine",
            "-m",
            str(model),
            "-d",
            str(data),
            "-o",
            str(out),
            "--range",
            "0-8",
            "--negatives",
            "3",
        ]
        result = CliRunner().invoke(app, [*args, *flags])
        assert result.exit_code == 0, result.output
        return out.read_text(encoding="utf-8")

    prompted = mine("prompted", tiny_prompted_dir)
    assert prompted == mine("flags", TINY_M3, "--query-prompt", "query: ", "--document-prompt", "passage: ")
    plain = mine("plain", TINY_M3)
    assert prompted != plain
    assert mine("none", tiny_prompted_dir, "--query-prompt", "", "--document-prompt", "") == plain
