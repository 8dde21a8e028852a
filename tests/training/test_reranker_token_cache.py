"""The reranker trainer's token cache: whole pairs (the cut → decode → re-tokenise round trip changes ids, so
per-text ids cannot be put together), the same batches as tokenising, reused when current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.conftest import TINY_RERANKER, XLMR_TOKENIZER
from tests.training.conftest import synthetic_rows, write_jsonl
from trivec.errors import InputError
from trivec.inference.reranker import PairTokenizer
from trivec.models import minilm_path
from trivec.training import token_cache
from trivec.training.reranker import GroupCollator, GroupDataset, RerankerConfig
from trivec.training.reranker.train import build_reranker_trainer, file_pairs, load_groups

TOKENIZERS = {"xlmr": XLMR_TOKENIZER, "tiny-reranker": TINY_RERANKER, "bert": None}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request: pytest.FixtureRequest) -> PreTrainedTokenizerBase:
    path = TOKENIZERS[request.param]
    return AutoTokenizer.from_pretrained(path if path is not None else minilm_path())


def stress_rows() -> list[dict[str, Any]]:
    """Queries cut mid-word (and at a bare `▁`), CJK, accents, capitals, unknown characters, long passages."""
    rows: list[dict[str, Any]] = synthetic_rows(8, negatives=3)
    rows[0]["query"] = "SUPERSONIC boundary-layer transitions über naïve Zürich cafés"
    rows[1]["query"] = "北京大学的研究人员发现了新的超导材料和方法"
    rows[1]["pos"] = ["研究人员在实验室中发现了一种新的超导材料,它在较高温度下仍然没有电阻。"]
    rows[2]["query"] = "ÉCOLE NORMALE SUPÉRIEURE résumé of the Hypersonic Flow"
    rows[3]["query"] = "a ☃ snowman 😀 and ﬁ ligature x\u0301y"
    rows[4]["neg"][0] = " ".join(["the long river flows past the old market"] * 30)
    rows[5]["pos"] = ["Qu'est-ce que l'écoulement HYPERSONIQUE au bord d'attaque émoussé?"]
    return rows


def pair_tokenizer(tokenizer: PreTrainedTokenizerBase, **extra: Any) -> PairTokenizer:
    values: dict[str, Any] = {"max_length": 40, "query_max_length": 6, "query_instruction": "Q: "}
    values.update(extra)
    return PairTokenizer(tokenizer, 512, **values)


def test_the_round_trip_changes_a_cut_querys_ids() -> None:
    """Why pairs are cached whole: a query cut to 4 tokens ends in a bare `▁` that the decode → encode
    round trip drops, so the pair is not `<s> cut(q) </s></s> cut(p) </s>`."""
    tokenizer = AutoTokenizer.from_pretrained(XLMR_TOKENIZER)
    query, passage = stress_rows()[0]["query"], "passage about flows"
    cut = tokenizer(query, add_special_tokens=False, truncation=True, max_length=4)["input_ids"]
    passage_ids = tokenizer(passage, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assembled = [cls, *cut, sep, sep, *passage_ids, sep]
    pair = PairTokenizer(tokenizer, 512, max_length=40, query_max_length=4).tokenize_pairs([(query, passage)])
    assert tokenizer.convert_ids_to_tokens(cut)[-1] == "▁"
    assert pair.input_ids[0] != assembled and pair.input_ids[0] == [
        cls,
        *cut[:-1],
        sep,
        sep,
        *passage_ids,
        sep,
    ]


def test_cached_batches_equal_tokenised_batches(tmp_path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", stress_rows())
    examples = load_groups(RerankerConfig(model="m", data=[str(path)], output_dir=str(tmp_path)))
    pairs = pair_tokenizer(tokenizer)
    pad_id = int(tokenizer.pad_token_id)
    cached, plain = GroupCollator(pairs, pad_id), GroupCollator(pairs, pad_id)
    lookup = cached.use_token_cache(file_pairs(examples))
    assert len(lookup) == sum(1 + len(r["neg"]) for r in stress_rows())
    dataset = GroupDataset(examples, group_size=4, seed=7)
    for epoch in range(3):
        dataset.epoch = epoch
        for start in range(0, len(dataset), 3):
            groups = [dataset[i] for i in range(start, min(start + 3, len(dataset)))]
            with_cache, without = cached(groups), plain(groups)
            assert with_cache.keys() == without.keys()
            assert ("token_type_ids" in without) == pairs.with_token_types
            for name in without:
                assert torch.equal(with_cache[name], without[name]), name
            items = [(q, p) for q, passages in groups for p in passages]
            expected = pairs.tokenize_pairs(items)
            for row, ids in enumerate(expected.input_ids):  # the reranker's own pairs, padded right
                assert with_cache["input_ids"][row, : len(ids)].tolist() == ids
                assert int(with_cache["attention_mask"][row].sum()) == len(ids)


def cache_files(path: Path) -> list[Path]:
    return sorted((path.parent / token_cache.CACHE_DIR).glob(f"{path.name}.*.safetensors"))


def test_current_cache_is_reused_and_a_changed_key_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(TINY_RERANKER)
    path = write_jsonl(tmp_path / "train.jsonl", stress_rows())
    files = file_pairs(load_groups(RerankerConfig(model="m", data=[str(path)], output_dir=str(tmp_path))))
    calls: list[int] = []
    original = GroupCollator.encode

    def counting(self: GroupCollator, items: Any) -> dict[str, list[list[int]]]:
        calls.append(len(items))
        return original(self, items)

    monkeypatch.setattr(GroupCollator, "encode", counting)
    GroupCollator(pair_tokenizer(tokenizer), 1).use_token_cache(files)
    assert calls == [len(files[0][1])]
    calls.clear()
    collator = GroupCollator(pair_tokenizer(tokenizer), 1)
    collator.use_token_cache(files)
    collator([(files[0][1][0][0], [files[0][1][0][1]])])
    assert calls == []  # read back, and the batch served from it
    for changed in ({"max_length": 48}, {"query_max_length": 8}, {"query_instruction": None}):
        calls.clear()
        GroupCollator(pair_tokenizer(tokenizer, **changed), 1).use_token_cache(files)
        assert calls, changed
    assert len(cache_files(path)) == 4
    calls.clear()
    collator([("a query the cache lacks", ["a passage"])])  # tokenised, not refused
    assert calls == [1]


def trainer_config(tmp_path: Path, data: Path, **extra: Any) -> RerankerConfig:
    values: dict[str, Any] = {
        "model": str(TINY_RERANKER), "data": [str(data)], "output_dir": str(tmp_path / "out"), "group_size": 3,
        "max_length": 48, "use_cpu": True,
    }  # fmt: skip
    values.update(extra)
    return RerankerConfig(**values)


def test_the_trainer_uses_the_cache_unless_turned_off(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(4))
    collator = build_reranker_trainer(trainer_config(tmp_path, data)).data_collator
    assert isinstance(collator, GroupCollator) and collator.token_cache is not None
    assert len(cache_files(data)) == 1
    off = build_reranker_trainer(trainer_config(tmp_path, data, token_cache=False)).data_collator
    assert isinstance(off, GroupCollator) and off.token_cache is None
    with pytest.raises(InputError, match="token_cache must be true or false"):
        trainer_config(tmp_path, data, token_cache="sometimes").validate()
