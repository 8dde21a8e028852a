"""Properties of the score functions and losses on random inputs (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from trivec.inference.scoring import maxsim
from trivec.training.losses import ContrastiveLoss, InfoNCELoss, M3KDLoss, M3UnifiedLoss, SelfDistillLoss
from trivec.training.losses.groups import own_group
from trivec.training.scores import colbert_scores, dot_scores

shapes = st.tuples(st.integers(1, 4), st.integers(1, 4))  # (B, G)


def random_scores(batch: int, group: int, seed: int, in_batch: bool = True) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, batch * group if in_batch else group, generator=generator, dtype=torch.float64) * 5
    )


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 10_000), st.booleans())
def test_infonce_is_minus_log_softmax_of_the_positive(
    shape: tuple[int, int], seed: int, in_batch: bool
) -> None:
    batch, group = shape
    scores = random_scores(batch, group, seed, in_batch)
    expected = np.mean(
        [
            -(scores[i, i * group if in_batch else 0] - torch.logsumexp(scores[i], 0)).item()
            for i in range(batch)
        ]
    )
    assert InfoNCELoss()(scores, group, in_batch).item() == pytest.approx(expected, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 10_000), st.booleans())
def test_m3_kd_with_a_one_hot_teacher_on_the_positive_is_infonce(
    shape: tuple[int, int], seed: int, in_batch: bool
) -> None:
    batch, group = shape
    scores = random_scores(batch, group, seed, in_batch)
    one_hot = torch.zeros(batch, group, dtype=torch.float64)
    one_hot[:, 0] = 1
    assert M3KDLoss()(scores, one_hot, group, in_batch).item() == pytest.approx(
        InfoNCELoss()(scores, group, in_batch).item(), abs=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(shapes, st.integers(0, 10_000))
def test_self_distill_of_the_ensemble_itself_is_its_entropy(shape: tuple[int, int], seed: int) -> None:
    batch, group = shape
    scores = random_scores(batch, group, seed)
    probs = torch.softmax(scores, -1)
    entropy = -(probs * torch.log_softmax(scores, -1)).sum(-1).mean()
    assert SelfDistillLoss()(scores, scores).item() == pytest.approx(entropy.item(), abs=1e-9)


def test_self_distill_teacher_gets_no_gradient() -> None:
    student = torch.randn(2, 6, requires_grad=True)
    teacher = torch.randn(2, 6, requires_grad=True)
    SelfDistillLoss()(student, teacher).backward()
    assert student.grad is not None and teacher.grad is None


@settings(max_examples=30, deadline=None)
@given(shapes, st.integers(0, 10_000))
def test_own_group_scoring_equals_the_block_of_in_batch_scoring(shape: tuple[int, int], seed: int) -> None:
    batch, group = shape
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(batch, 8, generator=g), dim=-1)
    p = F.normalize(torch.randn(batch * group, 8, generator=g), dim=-1)
    torch.testing.assert_close(dot_scores(q, p, False), own_group(dot_scores(q, p, True), group, True))
    qc = F.normalize(torch.randn(batch, 5, 8, generator=g), dim=-1)
    pc = F.normalize(torch.randn(batch * group, 7, 8, generator=g), dim=-1)
    qm = torch.rand(batch, 5, generator=g) > 0.3
    pm = torch.rand(batch * group, 7, generator=g) > 0.3
    qm[:, 0] = True
    pm[:, 0] = True
    full = colbert_scores(qc, qm, pc, pm, True)
    torch.testing.assert_close(colbert_scores(qc, qm, pc, pm, False), own_group(full, group, True))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 10_000))
def test_training_colbert_equals_exact_maxsim_on_unpadded_rows(batch: int, passages: int, seed: int) -> None:
    """No padding effect (Q1 fixed): each score equals `trivec.inference.scoring.maxsim` of the real rows."""
    g = torch.Generator().manual_seed(seed)
    q_len = torch.randint(1, 6, (batch,), generator=g)
    p_len = torch.randint(1, 9, (passages,), generator=g)
    q = F.normalize(torch.randn(batch, 6, 4, generator=g), dim=-1)
    p = F.normalize(torch.randn(passages, 9, 4, generator=g), dim=-1)
    qm = torch.arange(6)[None] < q_len[:, None]
    pm = torch.arange(9)[None] < p_len[:, None]
    q, p = q * qm[..., None], p * pm[..., None]  # padding rows are zero, as the model gives them
    scores = colbert_scores(q, qm, p, pm, True)
    for i in range(batch):
        for j in range(passages):
            exact = maxsim(q[i, : q_len[i]].numpy(), p[j, : p_len[j]].numpy())
            assert scores[i, j].item() == pytest.approx(exact, abs=1e-5)


def test_kd_losses_reject_unknown_types_and_bad_layouts() -> None:
    with pytest.raises(ValueError, match="kd_loss_type"):
        ContrastiveLoss("kl")
    with pytest.raises(ValueError, match="do not fit"):
        InfoNCELoss()(torch.zeros(2, 5), 3, True)


def test_unified_loss_needs_all_three_scores() -> None:
    with pytest.raises(ValueError, match="missing sparse, colbert"):
        M3UnifiedLoss()({"dense": torch.zeros(2, 6)}, 3)


def test_unified_loss_parts_combine_with_the_documented_weights() -> None:
    scores = {m: random_scores(2, 3, seed) for seed, m in enumerate(("dense", "sparse", "colbert"))}
    loss, parts = M3UnifiedLoss()(scores, 3, self_distill=True)
    base = (parts["dense"] + parts["ensemble"] + 0.1 * parts["sparse"] + parts["colbert"]) / 4
    distill = (
        parts["self_distill_dense"] + 0.1 * parts["self_distill_sparse"] + parts["self_distill_colbert"]
    ) / 3
    assert loss.item() == pytest.approx(((base + distill) / 2).item(), abs=1e-12)
