"""Training data: validation errors (file, line, field), group sampling, instructions, batch plans, config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from tests.conftest import TINY_M3
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.errors import InputError
from trivec.training.arguments import DataArguments, build_config, read_yaml
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset, TrainBatch


def dataset(files: list[Any], batch_size: int = 4, world_size: int = 1, **data: Any) -> ContrastiveDataset:
    args = DataArguments(train_data=[str(f) if isinstance(f, Path) else f for f in files], **data)
    args.validate()
    tokenizer = AutoTokenizer.from_pretrained(TINY_M3) if args.length_buckets else None
    return ContrastiveDataset(args, batch_size=batch_size, world_size=world_size, seed=3, tokenizer=tokenizer)


def all_batches(data: ContrastiveDataset, epoch: int = 0) -> list[TrainBatch]:
    data.set_epoch(epoch)
    return [data[i] for i in range(len(data))]


GOOD = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}
BAD_ROWS = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object, got an array"),
    ({"pos": ["p"], "neg": []}, "field 'query' is missing"),
    ({"query": 3, "pos": ["p"]}, "field 'query' must be a string, got int"),
    ({"query": "  ", "pos": ["p"]}, "field 'query' is empty"),
    ({"query": "q", "neg": ["n"]}, "field 'pos' is missing"),
    ({"query": "q", "pos": []}, "field 'pos' is empty"),
    ({"query": "q", "pos": "p"}, "field 'pos' must be a list of strings, got str"),
    ({"query": "q", "pos": ["p"], "neg": ["n", 5]}, "field 'neg[1]' must be a string, got int"),
    ({"query": "q", "pos": ["p"], "neg": [], "prompt": 1}, "field 'prompt' must be a string"),
    ({"query": "q", "pos": ["p"], "neg": [], "type": ["x"]}, "field 'type' must be a string"),
]


@pytest.mark.parametrize(("row", "message"), BAD_ROWS)
def test_bad_rows_name_file_line_and_field(tmp_path: Path, row: Any, message: str) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", [GOOD, GOOD, row, GOOD])
    with pytest.raises(InputError) as info:
        dataset([path], train_group_size=1)
    assert f"{path}:3" in str(info.value)
    assert message in str(info.value)


KD_ROWS = [
    ({**GOOD, "pos_scores": [1.0]}, "field 'neg_scores' is missing"),
    (
        {**GOOD, "pos_scores": [1.0, 2.0], "neg_scores": [0.0, 0.0]},
        "'pos_scores' has 2 scores but 'pos' has 1",
    ),
    (
        {**GOOD, "pos_scores": [1.0], "neg_scores": [0.0, "x"]},
        "field 'neg_scores[1]' must be a finite number",
    ),
    (
        {**GOOD, "pos_scores": [True], "neg_scores": [0.0, 1.0]},
        "field 'pos_scores[0]' must be a finite number",
    ),
]


@pytest.mark.parametrize(("row", "message"), KD_ROWS)
def test_teacher_scores_are_checked_when_distilling(tmp_path: Path, row: Any, message: str) -> None:
    good = {**GOOD, "pos_scores": [1.0], "neg_scores": [0.5, 0.2]}
    path = write_jsonl(tmp_path / "kd.jsonl", [good, row])
    with pytest.raises(InputError, match=re.escape(message)) as info:
        dataset([path], train_group_size=3, knowledge_distillation=True)
    assert f"{path}:2" in str(info.value)
    dataset([path], train_group_size=3)  # without distillation the scores are not used, so not checked


def test_missing_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        dataset([tmp_path / "nope.jsonl"])
    with pytest.raises(InputError, match="no training rows"):
        dataset([write_jsonl(tmp_path / "empty.jsonl", [])])
    with pytest.raises(InputError, match="must be JSONL"):
        dataset([tmp_path / "data.csv"])


def test_empty_negatives_are_an_error_that_names_the_row_when_groups_need_them(tmp_path: Path) -> None:
    rows = synthetic_rows(8)
    rows[5]["neg"] = []
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(InputError, match=r"train.jsonl:6: field 'neg' is empty but train_group_size is 3"):
        dataset([path], train_group_size=3)
    assert len(dataset([path], train_group_size=1)) > 0  # in-batch negatives only: fine


def test_fill_negatives_random_draws_other_rows_texts(tmp_path: Path) -> None:
    rows = [{"query": f"q{i}", "pos": [f"p{i}"], "neg": []} for i in range(8)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    data = dataset([path], train_group_size=4, fill_negatives="random", batch_size=8)
    for batch in all_batches(data):
        for i, query in enumerate(batch.queries):
            group = batch.passages[i * 4 : (i + 1) * 4]
            assert group[0] == "p" + query[1:]
            assert all(text.startswith("p") and text != group[0] for text in group[1:])


def test_group_sampling_one_positive_then_negatives_with_replacement_when_too_few(tmp_path: Path) -> None:
    rows = [
        {"query": "few", "pos": ["pa", "pb"], "neg": ["n0", "n1"]},
        {"query": "many", "pos": ["pc"], "neg": [f"m{k}" for k in range(10)]},
    ]
    data = dataset([write_jsonl(tmp_path / "t.jsonl", rows)], train_group_size=6, batch_size=2)
    seen_positives = set()
    for epoch in range(6):
        (batch,) = all_batches(data, epoch)
        groups = {q: batch.passages[i * 6 : (i + 1) * 6] for i, q in enumerate(batch.queries)}
        assert groups["few"][0] in ("pa", "pb") and set(groups["few"][1:]) == {"n0", "n1"}
        assert len(groups["few"][1:]) == 5  # two negatives repeated to fill five slots
        assert groups["many"][0] == "pc" and len(set(groups["many"][1:])) == 5  # no repeats when enough
        seen_positives.add(groups["few"][0])
    assert seen_positives == {"pa", "pb"}  # a random positive each epoch


def test_teacher_scores_follow_the_sampled_passages(tmp_path: Path) -> None:
    rows = [
        {
            "query": f"q{i}",
            "pos": [f"p{i}-{j}" for j in range(2)],
            "neg": [f"n{i}-{k}" for k in range(4)],
            "pos_scores": [100.0 + j for j in range(2)],
            "neg_scores": [float(k) for k in range(4)],
        }
        for i in range(4)
    ]
    data = dataset(
        [write_jsonl(tmp_path / "kd.jsonl", rows)], train_group_size=3, knowledge_distillation=True
    )
    for batch in all_batches(data):
        assert batch.teacher_scores is not None and len(batch.teacher_scores) == len(batch.passages)
        for text, score in zip(batch.passages, batch.teacher_scores, strict=True):
            index = int(text.split("-")[1])
            assert score == (100.0 + index if text.startswith("p") else float(index))


def test_query_instructions_only_when_given(tmp_path: Path) -> None:
    """Q12 fixed: no instruction and no prompt ⇒ the raw query (never a literal 'None' prefix), in both modes."""
    rows = [
        {"query": "plain", "pos": ["a"], "neg": ["b"]},
        {"query": "prompted", "pos": ["c"], "neg": ["d"], "prompt": "Find: "},
    ]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    for same in (False, True):
        (batch,) = all_batches(
            dataset([path], train_group_size=2, batch_size=2, same_dataset_within_batch=same)
        )
        assert sorted(batch.queries) == ["Find: prompted", "plain"]
    (batch,) = all_batches(dataset([path], train_group_size=2, batch_size=2, query_instruction="Q: "))
    assert sorted(batch.queries) == ["Find: prompted", "Q: plain"]
    (batch,) = all_batches(
        dataset([path], train_group_size=2, batch_size=2, query_instruction="Q: ", use_row_prompts=False)
    )
    assert sorted(batch.queries) == ["Q: plain", "Q: prompted"]
    per_file = {"path": str(path), "query_instruction": "<{}> "}
    (batch,) = all_batches(
        dataset([per_file], train_group_size=2, batch_size=2, query_instruction_format="{}{}")
    )
    assert "<{}> plain" in batch.queries


def test_symmetric_rows_give_passages_the_query_instruction(tmp_path: Path) -> None:
    rows = [{"query": "x", "pos": ["y"], "neg": ["z"], "type": "symmetric_sts"}] * 2
    path = write_jsonl(tmp_path / "sts.jsonl", rows)
    (batch,) = all_batches(dataset([path], train_group_size=2, batch_size=2, query_instruction="S: "))
    assert batch.queries == ["S: x", "S: x"] and set(batch.passages) == {"S: y", "S: z"}


def test_same_dataset_batches_with_per_file_settings(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", synthetic_rows(12, negatives=4))
    b = write_jsonl(tmp_path / "b_no_in_batch_neg.jsonl", synthetic_rows(9, negatives=1, seed=3))
    files = [{"path": str(a), "batch_size": 3, "train_group_size": 5}, str(b)]
    data = dataset(files, batch_size=2, train_group_size=2, same_dataset_within_batch=True)
    batches = all_batches(data)
    assert len(batches) == 4 + 5  # 12/3 and ceil(9/2) (the short last batch is kept on one process)
    for batch in batches:
        origins = {s.rsplit(":", 1)[0] for s in batch.sources}
        assert len(origins) == 1
        if origins == {str(a)}:
            assert len(batch.queries) == 3 and batch.group_size == 5 and batch.in_batch_negatives
        else:
            assert len(batch.queries) <= 2 and batch.group_size == 2 and not batch.in_batch_negatives
    assert sorted(s for b in batches for s in b.sources) == sorted(
        [f"{a}:{i}" for i in range(1, 13)] + [f"{b}:{i}" for i in range(1, 10)]
    )


def test_mixing_files_with_different_group_sizes_needs_same_dataset_batches(tmp_path: Path) -> None:
    a = write_jsonl(tmp_path / "a.jsonl", synthetic_rows(4))
    b = write_jsonl(tmp_path / "b.jsonl", synthetic_rows(4))
    with pytest.raises(InputError, match="same_dataset_within_batch"):
        dataset([str(a), {"path": str(b), "train_group_size": 2}])
    mixed = dataset([a, b], batch_size=4, train_group_size=3)
    assert any(len({s.rsplit(":", 1)[0] for s in batch.sources}) == 2 for batch in all_batches(mixed))


def test_length_buckets_keep_short_and_long_rows_apart(tmp_path: Path) -> None:
    rows = []
    for i in range(12):
        words = " ".join(["river"] * (2 if i % 2 else 60))
        rows.append({"query": f"q {i}", "pos": [f"{words} {i}"], "neg": ["short"]})
    data = dataset(
        [write_jsonl(tmp_path / "t.jsonl", rows)],
        batch_size=4,
        train_group_size=2,
        length_buckets=[32],
        bucket_batch_sizes=[6, 3],
    )
    batches = all_batches(data)
    for batch in batches:
        lengths = {len(p.split()) > 10 for p in batch.passages[::2]}
        assert len(lengths) == 1
        assert len(batch.queries) == (3 if lengths == {True} else 6)
    assert sum(len(b.queries) for b in batches) == 12


def test_plan_is_deterministic_and_changes_with_the_epoch(rows_file: Path) -> None:
    first = [b.queries for b in all_batches(dataset([rows_file]), 0)]
    again = [b.queries for b in all_batches(dataset([rows_file]), 0)]
    other = [b.queries for b in all_batches(dataset([rows_file]), 1)]
    assert first == again and first != other
    assert sorted(q for b in first for q in b) == sorted(q for b in other for q in b)


def test_two_processes_with_batch_b_see_the_rows_of_one_with_batch_2b(rows_file: Path) -> None:
    one = dataset([rows_file], batch_size=8, world_size=1, train_group_size=3)
    two = dataset([rows_file], batch_size=4, world_size=2, train_group_size=3)
    assert len(two) == 2 * len(one)
    for epoch in (0, 1):
        joined = all_batches(two, epoch)
        for g, batch in enumerate(all_batches(one, epoch)):
            left, right = joined[2 * g], joined[2 * g + 1]
            assert batch.queries == left.queries + right.queries
            assert batch.passages == left.passages + right.passages


def test_incomplete_global_batches_are_dropped_with_several_processes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", synthetic_rows(10))
    assert len(dataset([path], batch_size=4, world_size=1)) == 3
    assert len(dataset([path], batch_size=4, world_size=2)) == 2  # one global batch of 8; 2 rows dropped
    with pytest.raises(InputError, match="no complete batch"):
        dataset([path], batch_size=8, world_size=2)


def test_max_examples_subsamples_each_file(rows_file: Path) -> None:
    data = dataset([{"path": str(rows_file), "max_examples": 5}], batch_size=5)
    assert data.num_examples == 5 and len(data) == 1


def test_collator_truncates_and_pads_each_side(rows_file: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_M3)
    collator = ContrastiveCollator(tokenizer, query_max_len=5, passage_max_len=7, pad_to_multiple_of=4)
    batch = all_batches(dataset([rows_file], batch_size=2, train_group_size=3))[0]
    features = collator([batch])
    assert features["query"]["input_ids"].shape == (2, 8)  # 5 tokens padded to a multiple of 4
    assert features["passage"]["input_ids"].shape[0] == 6
    assert int(features["passage"]["attention_mask"].sum(1).max()) <= 7
    assert "teacher_scores" not in features and features["in_batch_negatives"] is True
    kd = TrainBatch(["q"], ["a", "b"], 2, True, [1.0, 0.0])
    assert torch.equal(collator(kd)["teacher_scores"], torch.tensor([1.0, 0.0]))


def test_collator_reads_text_in_capitals_as_the_folding_model_does() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_M3)
    shouting = "WHAT IS THE BOUNDARY LAYER OF A FLAT PLATE IN SUPERSONIC FLOW"
    batch = TrainBatch([shouting], [shouting, "Normal NASA text."], 2, True, None)
    folded = ContrastiveCollator(tokenizer, 64, 64, fold_capitals=True)(batch)
    lowered = ContrastiveCollator(tokenizer, 64, 64)(
        TrainBatch([shouting.lower()], [shouting.lower(), "Normal NASA text."], 2, True, None)
    )
    as_is = ContrastiveCollator(tokenizer, 64, 64)(batch)
    for side in ("query", "passage"):
        assert torch.equal(folded[side]["input_ids"], lowered[side]["input_ids"])
    assert not torch.equal(as_is["query"]["input_ids"], folded["query"]["input_ids"])


# ---------------------------------------------------------------------------------------------- config
def test_yaml_sections_are_flattened_and_flags_override(tmp_path: Path, rows_file: Path) -> None:
    recipe = tmp_path / "train.yaml"
    recipe.write_text(
        "model:\n  model: default\n  dropout: 0.0\n"
        f"data:\n  train_data:\n    - path: {rows_file}\n      batch_size: 2\n  train_group_size: 4\n"
        "loss:\n  temperature: 0.05\n"
        "training:\n  learning_rate: 3.0e-5\n  output_dir: /tmp/x\n",
        encoding="utf-8",
    )
    values = read_yaml(recipe)
    config = build_config(values, {"temperature": 0.1, "output_dir": str(tmp_path / "o")})
    assert config.loss.temperature == 0.1 and config.data.train_group_size == 4
    assert config.training.learning_rate == 3e-5 and config.model.dropout == 0.0
    assert config.data.train_data == [{"path": str(rows_file), "batch_size": 2}]
    assert str(config.training.output_dir) == str(tmp_path / "o")
    assert not config.training.fp16 and not config.training.bf16  # fp32 on CPU
    assert json.loads(json.dumps(config.to_dict()))["loss"]["temperature"] == 0.1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tempreature": 0.1}, "unknown argument"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"kd_loss_type": "kl"}, "kd_loss_type"),
        ({"use_self_distill": True}, "needs unified_finetuning"),
        ({"train_group_size": 0}, "train_group_size must be at least 1"),
        ({"bucket_batch_sizes": [4]}, "needs length_buckets"),
        ({"length_buckets": [64, 32]}, "increasing"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_arguments_are_clear_errors(rows_file: Path, values: dict[str, Any], message: str) -> None:
    base = {"train_data": [str(rows_file)], "output_dir": "/tmp/unused"}
    with pytest.raises(InputError, match=message):
        build_config(values, base, source="train.yaml")


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("temperature: 0.1\nmodel: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.yaml:\d+: invalid YAML"):
        read_yaml(recipe)
