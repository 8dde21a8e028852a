"""Mode names and what each mode needs: aliases, missing heads, model outputs, how a result's hybrids fused,
and a ranking task whose main score is not a per-query measure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trivec.errors import InputError
from trivec.evaluation import task_from_dir
from trivec.evaluation.data import load_reranking
from trivec.evaluation.evaluators import EvalSettings, RerankingEvaluator
from trivec.evaluation.evaluators.base import (
    HYBRID_MODES,
    hybrid_fusion,
    mode_requirement,
    parse_mode,
    parse_modes,
)
from trivec.evaluation.evaluators.retrieval import outputs_needed


def test_one_mode_is_read_as_a_list_of_modes_reads_it() -> None:
    for name in ("dense", "all", "hybrid", "sparse+dense", "colbert+sparse+dense", " bm25 "):
        assert (parse_mode(name),) == parse_modes(name)
    assert HYBRID_MODES == ("dense+sparse", "all")
    with pytest.raises(InputError, match=r"unknown mode to pair with 'dense,all'; expected one of dense, "):
        parse_mode("dense,all", "mode to pair with")
    with pytest.raises(InputError, match=r"unknown mode\(s\) splade"):
        parse_modes("dense,splade")


@pytest.mark.parametrize(
    ("mode", "sparse", "colbert", "why"),
    [
        ("dense", False, False, None),
        ("bm25", False, False, None),
        ("sparse", False, True, "model has no sparse head"),
        ("dense+sparse", False, True, "model has no sparse head"),
        ("colbert", True, False, "model has no ColBERT head"),
        ("all", True, False, "model has no ColBERT head"),
        ("all", False, False, "model has no sparse or ColBERT head"),
        ("all", True, True, None),
    ],
)
def test_a_mode_needs_the_heads_of_its_parts(mode: str, sparse: bool, colbert: bool, why: str | None) -> None:
    assert mode_requirement(mode, sparse, colbert) == why


def test_the_outputs_encoded_are_those_of_the_modes_parts() -> None:
    assert outputs_needed(["bm25"]) == (False, False, False)
    assert outputs_needed(["colbert", "bm25"]) == (True, False, True)
    assert outputs_needed(["dense+sparse"]) == (True, True, False)
    assert outputs_needed(["dense", "all"]) == (True, True, True)


def test_a_result_s_hybrids_fused_weighted_unless_it_records_another_fusion() -> None:
    def result(modes: list[str], **settings: str) -> dict:
        return {"main_score": {"values": dict.fromkeys(modes, 0.5)}, "settings": settings}

    assert hybrid_fusion(result(["dense", "bm25"], fusion="zscore")) is None  # no hybrid: nothing fused
    assert hybrid_fusion(result(["dense", "all"])) == "weighted"  # only another fusion is recorded
    assert hybrid_fusion(result(["dense+sparse"], fusion="rrf")) == "rrf"


def test_a_reranking_main_score_that_is_no_per_query_measure_is_a_programming_error(
    small_tasks: dict[str, Path],
) -> None:
    task = dataclasses.replace(task_from_dir(small_tasks["reranking"])[0], main_score="ndcg_at_7")
    with pytest.raises(ValueError, match="main score 'ndcg_at_7' is not one of map, mrr_at_10"):
        RerankingEvaluator(EvalSettings(modes=("bm25",))).evaluate(task, load_reranking(task), None)
