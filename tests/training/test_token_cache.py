"""The token cache: the same batches as tokenising, reused when current, rebuilt when stale or damaged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.conftest import TINY_M3
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.errors import InputError
from trivec.models.casing import fold_capitals
from trivec.training import token_cache
from trivec.training.arguments import DataArguments, build_config
from trivec.training.collator import ContrastiveCollator
from trivec.training.dataset import ContrastiveDataset, TrainBatch
from trivec.training.recipe_yaml import parse_assignments


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(TINY_M3)


def mixed_rows() -> list[dict[str, Any]]:
    """Rows with prompts, a symmetric row, capitals, long texts and rows without negatives (fill random)."""
    rows: list[dict[str, Any]] = synthetic_rows(12)
    rows[1]["prompt"] = "Find the passage: "
    rows[2].update(type="symmetric_sts", prompt="Same meaning: ")
    rows[3]["query"] = "WHAT IS THE RIVER NUMBER 3 IN SUPERSONIC FLOW?"
    rows[4]["pos"] = [" ".join(["the long river flows past the old market"] * 20)]
    rows[5]["neg"] = []
    rows[6]["neg"] = []
    return rows


def make_dataset(files: list[Path], **data: Any) -> ContrastiveDataset:
    args = DataArguments(
        train_data=[str(f) for f in files],
        train_group_size=3,
        query_instruction="query: ",
        passage_instruction="passage: ",
        fill_negatives="random",
        **data,
    )
    args.validate()
    return ContrastiveDataset(args, batch_size=4, seed=5)


def reference(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, multiple: int | None, fold: bool
) -> dict[str, torch.Tensor]:
    """How the collator tokenised before the cache: the tokenizer's own call and padding."""
    texts = [fold_capitals(t) for t in texts] if fold else texts
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_token_type_ids=False)
    padded = tokenizer.pad(encoded, padding=True, pad_to_multiple_of=multiple, return_tensors="pt")
    return {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}


def batches(data: ContrastiveDataset, epochs: int = 2) -> list[TrainBatch]:
    out = []
    for epoch in range(epochs):
        data.set_epoch(epoch)
        out.extend(data[i] for i in range(len(data)))
    return out


@pytest.mark.parametrize(("multiple", "fold"), [(None, False), (8, True)])
def test_cached_batches_equal_tokenised_batches(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, multiple: int | None, fold: bool
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", mixed_rows())
    data = make_dataset([path])
    collator = ContrastiveCollator(tokenizer, 12, 24, pad_to_multiple_of=multiple, fold_capitals=fold)
    plain = ContrastiveCollator(tokenizer, 12, 24, pad_to_multiple_of=multiple, fold_capitals=fold)
    collator.use_token_cache(data)
    assert collator.token_cache is not None and len(collator.token_cache) > 0
    for batch in batches(data):
        cached, tokenised = collator(batch), plain(batch)
        for side, texts, limit in (("query", batch.queries, 12), ("passage", batch.passages, 24)):
            expected = reference(tokenizer, texts, limit, multiple, fold)
            for name in ("input_ids", "attention_mask"):
                assert torch.equal(cached[side][name], expected[name]), (side, name)
                assert torch.equal(tokenised[side][name], expected[name]), (side, name)


def test_every_text_a_batch_holds_is_in_the_cache(tmp_path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", mixed_rows())
    data = make_dataset([path])
    lookup = ContrastiveCollator(tokenizer, 12, 24).use_token_cache(data)
    for batch in batches(data, epochs=3):
        assert all(lookup.get("query", t) is not None for t in batch.queries)
        assert all(lookup.get("passage", t) is not None for t in batch.passages)


def cache_files(path: Path) -> list[Path]:
    return sorted((path.parent / token_cache.CACHE_DIR).glob(f"{path.name}.*.safetensors"))


def count_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = ContrastiveCollator.encode

    def counting(self: ContrastiveCollator, texts: Any, max_length: int) -> list[list[int]]:
        calls.append(len(texts))
        return original(self, texts, max_length)

    monkeypatch.setattr(ContrastiveCollator, "encode", counting)
    return calls


def test_current_cache_is_reused_and_a_changed_key_rebuilds(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", mixed_rows())
    calls = count_builds(monkeypatch)
    ContrastiveCollator(tokenizer, 12, 24).use_token_cache(make_dataset([path]))
    assert calls and len(cache_files(path)) == 1
    calls.clear()
    ContrastiveCollator(tokenizer, 12, 24).use_token_cache(make_dataset([path]))
    assert calls == []  # read back, nothing tokenised
    for changed in (
        lambda: ContrastiveCollator(tokenizer, 12, 32).use_token_cache(make_dataset([path])),
        lambda: ContrastiveCollator(tokenizer, 12, 24, fold_capitals=True).use_token_cache(
            make_dataset([path])
        ),
        lambda: ContrastiveCollator(tokenizer, 12, 24).use_token_cache(
            make_dataset([path], query_instruction_format="<{}>{}")
        ),
        lambda: ContrastiveCollator(tokenizer, 12, 24).use_token_cache(
            make_dataset([path], use_row_prompts=False)
        ),
    ):
        calls.clear()
        changed()
        assert calls, "a changed setting must tokenise again"
    assert len(cache_files(path)) == 5  # the same data: every setting's cache is kept


def test_changed_data_rebuilds_and_removes_the_stale_cache(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", mixed_rows())
    ContrastiveCollator(tokenizer, 12, 24).use_token_cache(make_dataset([path]))
    old = cache_files(path)
    rows = mixed_rows()
    rows[0]["pos"] = ["a new positive about the winter garden"]
    write_jsonl(path, rows)
    calls = count_builds(monkeypatch)
    data = make_dataset([path])
    collator = ContrastiveCollator(tokenizer, 12, 24)
    lookup = collator.use_token_cache(data)
    assert calls and cache_files(path) != old and len(cache_files(path)) == 1
    assert lookup.get("passage", "passage: a new positive about the winter garden") is not None


def test_damaged_cache_is_rebuilt_with_a_warning(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", mixed_rows())
    data = make_dataset([path])
    ContrastiveCollator(tokenizer, 12, 24).use_token_cache(data)
    (cached,) = cache_files(path)
    whole = cached.read_bytes()
    for damage in (whole[: len(whole) // 2], whole[:-8] + b"\xff" * 8, b"not a cache"):
        cached.write_bytes(damage)
        collator = ContrastiveCollator(tokenizer, 12, 24)
        with caplog.at_level(logging.WARNING, logger="trivec.training.token_cache"):
            collator.use_token_cache(data)
        assert "damaged" in caplog.text
        caplog.clear()
        assert cached.read_bytes() == whole  # rebuilt: the same ids again
        batch = data[0]
        assert torch.equal(
            collator(batch)["passage"]["input_ids"],
            ContrastiveCollator(tokenizer, 12, 24)(batch)["passage"]["input_ids"],
        )


def test_read_only_data_folder_caches_under_trivec_cache(
    tmp_path: Path, tokenizer: PreTrainedTokenizerBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = write_jsonl(folder / "train.jsonl", mixed_rows())
    folder.chmod(0o555)
    monkeypatch.setenv("TRIVEC_CACHE", str(tmp_path / "cache"))
    try:
        ContrastiveCollator(tokenizer, 12, 24).use_token_cache(make_dataset([path]))
        assert not (folder / token_cache.CACHE_DIR).exists()
        assert len(list((tmp_path / "cache" / "token-cache").glob("*/train.jsonl.*.safetensors"))) == 1
    finally:
        folder.chmod(0o755)


def test_token_cache_setting(tmp_path: Path) -> None:
    overrides = {"train_data": ["x.jsonl"], "output_dir": str(tmp_path), "report_to": []}
    assert build_config(overrides=overrides).data.token_cache is True
    off = build_config(overrides={**overrides, **parse_assignments(["token_cache=false"])})
    assert off.data.token_cache is False
    with pytest.raises(InputError, match="token_cache must be true or false"):
        build_config(overrides={**overrides, "token_cache": "sometimes"})
