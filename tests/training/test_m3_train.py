"""`trivec train m3` and per-part training: frozen parts stay put, trainable ones get gradients, M3-izing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.conftest import TINY_M3
from tests.training.conftest import quick_overrides, synthetic_rows, write_jsonl
from trivec.cli import app
from trivec.errors import InputError
from trivec.inference import Embedder
from trivec.models import M3Model
from trivec.training.arguments import M3_DEFAULTS, ModelArguments, build_config
from trivec.training.losses import M3UnifiedLoss
from trivec.training.modeling import ContrastiveModel
from trivec.training.train import build_trainer, train_contrastive

runner = CliRunner()
PART_PREFIX = {"backbone": "backbone.", "sparse": "sparse_head.", "colbert": "colbert_head."}


def part_of(name: str) -> str:
    """`backbone`, `sparse` or `colbert` for a parameter name of `M3Model`."""
    return next(part for part, prefix in PART_PREFIX.items() if name.startswith(prefix))


def saved_weights(directory: Path) -> dict[str, torch.Tensor]:
    """An output folder's weights keyed like `M3Model.state_dict()`."""
    state = {f"backbone.{k}": v for k, v in load_file(directory / "model.safetensors").items()}
    for part in ("sparse", "colbert"):
        for key, value in torch.load(directory / f"{part}_linear.pt", weights_only=True).items():
            state[f"{part}_head.linear.{key}"] = value
    return state


# ------------------------------------------------------------------------------------- parts and freezing
def test_train_parts_are_parsed_expanded_and_checked() -> None:
    assert ModelArguments(train_parts="heads").parts() == ("sparse", "colbert")  # type: ignore[arg-type]
    assert ModelArguments(train_parts=["colbert", "backbone"]).parts() == ("backbone", "colbert")
    assert ModelArguments().parts() == ("backbone", "sparse", "colbert")
    with pytest.raises(InputError, match=r"unknown train part 'pooler'; allowed: backbone, sparse, colbert"):
        ModelArguments(train_parts="backbone,pooler").validate()  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'dense' has no weights of its own"):
        ModelArguments(train_parts=["dense"]).parts()


def test_config_resolves_parts_and_refuses_heads_without_unified_training(tmp_path: Path) -> None:
    data = [str(tmp_path / "x.jsonl")]
    dense = build_config({}, quick_overrides(tmp_path, data))
    assert dense.model.train_parts == ["backbone"]  # dense-only training never updates the heads
    m3 = build_config({}, quick_overrides(tmp_path, data, train_parts="heads"), defaults=M3_DEFAULTS)
    assert m3.model.train_parts == ["sparse", "colbert"]
    assert m3.loss.unified_finetuning and m3.loss.use_self_distill and m3.loss.kd_loss_type == "m3_kd_loss"
    assert build_config({"temperature": 0.05}, quick_overrides(tmp_path, data), defaults=M3_DEFAULTS).loss.temperature == 0.05  # fmt: skip
    with pytest.raises(InputError, match="trained only by unified M3 fine-tuning"):
        build_config({}, quick_overrides(tmp_path, data, train_parts="heads"))
    with pytest.raises(InputError, match="colbert_dim sets the size of a new ColBERT head"):
        build_config({}, quick_overrides(tmp_path, data, colbert_dim=8))


def test_model_without_heads_and_dense_training_has_nothing_to_train() -> None:
    encoder = M3Model.from_pretrained(TINY_M3, heads="none")
    with pytest.raises(InputError, match="nothing to train: train_parts sparse,colbert"):
        ContrastiveModel(encoder, train_parts=("sparse", "colbert"))


@pytest.mark.parametrize("parts", [("sparse", "colbert"), ("backbone",), ("backbone", "sparse")])
def test_gradients_reach_exactly_the_trainable_parts(tmp_path: Path, rows_file: Path, parts: tuple) -> None:
    config = build_config(
        {}, quick_overrides(tmp_path, [str(rows_file)], train_parts=list(parts)), defaults=M3_DEFAULTS
    )
    trainer = build_trainer(config)
    model = trainer.model
    assert isinstance(model, ContrastiveModel) and model.train_parts == parts
    batch = next(iter(trainer.get_train_dataloader()))
    model(**batch).loss.backward()
    for name, param in model.encoder.named_parameters():
        trains = part_of(name) in parts
        assert param.requires_grad == trains, name
        if name.startswith("backbone.pooler."):  # HF's pooler: M3 pools last_hidden_state itself
            assert param.grad is None
            continue
        assert (param.grad is not None and bool(param.grad.abs().sum() > 0)) == trains, name
    for part in parts:  # every trainable part has parameters with a gradient
        assert any(part_of(n) == part and p.grad is not None for n, p in model.encoder.named_parameters())
    optimizer = trainer.create_optimizer()
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("parts", ["heads", "backbone"])
def test_frozen_parts_are_saved_unchanged(tmp_path: Path, rows_file: Path, parts: str) -> None:
    """Two optimizer steps with a large learning rate: trainable parts move, frozen ones keep every bit."""
    overrides = quick_overrides(
        tmp_path,
        [str(rows_file)],
        max_steps=2,
        learning_rate=1e-2,
        warmup_steps=0,
        train_parts=parts,
        gradient_checkpointing=True,  # skipped for a frozen backbone, on for a trained one
    )
    out = train_contrastive(build_config({}, overrides, defaults=M3_DEFAULTS))
    start = M3Model.from_pretrained(TINY_M3, heads="require").state_dict()
    after = saved_weights(out)
    assert after.keys() == start.keys()
    trained = {"heads": {"sparse", "colbert"}, "backbone": {"backbone"}}[parts]
    moved = {part_of(k) for k in start if not torch.equal(after[k].float(), start[k].float())}
    assert moved == trained
    recipe = json.loads((out / "trivec_training.json").read_text(encoding="utf-8"))
    assert recipe["model"]["train_parts"] == sorted(trained, key=["backbone", "sparse", "colbert"].index)
    assert recipe["loss"]["unified_finetuning"] and recipe["loss"]["kd_loss_type"] == "m3_kd_loss"


def test_self_distill_weights_default_to_the_loss_weights() -> None:
    torch.manual_seed(0)
    scores = {m: torch.randn(2, 6) for m in ("dense", "sparse", "colbert")}
    default, _ = M3UnifiedLoss()(scores, 3, self_distill=True)
    same, _ = M3UnifiedLoss(self_distill_weights=(1.0, 0.1, 1.0))(scores, 3, self_distill=True)
    none, parts = M3UnifiedLoss(self_distill_weights=(0.0, 0.0, 0.0))(scores, 3, self_distill=True)
    plain, _ = M3UnifiedLoss()(scores, 3)
    torch.testing.assert_close(default, same)
    torch.testing.assert_close(none, plain / 2)
    assert "self_distill_dense" in parts


# ---------------------------------------------------------------------------------------------- CLI
def m3_args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return [
        "train", "m3", "--data", str(data), "--output", str(tmp_path / "out"), "--group-size", "3",
        "--batch-size", "4", "--max-steps", "2", "--learning-rate", "1e-3", "--set", "report_to=[]",
        "--set", "disable_tqdm=true", "--set", "save_strategy=no", "--set", "use_cpu=true", *extra,
    ]  # fmt: skip


def test_cli_m3_izes_the_dense_only_default_model(tmp_path: Path) -> None:
    """MiniLM (dense only) → new sparse and 64-dim ColBERT heads trained on a frozen encoder; loads and
    encodes all three outputs."""
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(8))
    args = m3_args(
        tmp_path, data, "--model", "all-MiniLM-L6-v2", "--colbert-dim", "64", "--train-parts", "heads"
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    sparse = torch.load(out / "sparse_linear.pt", weights_only=True)
    colbert = torch.load(out / "colbert_linear.pt", weights_only=True)
    assert sparse["weight"].shape == (1, 384) and sparse["bias"].shape == (1,)
    assert colbert["weight"].shape == (64, 384) and colbert["bias"].shape == (64,)
    original = M3Model.from_pretrained("all-MiniLM-L6-v2").backbone.state_dict()
    saved = load_file(out / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in original.items() if k in saved)
    assert len(set(original) & set(saved)) > 50

    embedder = Embedder.from_pretrained(out, device="cpu")
    result_ = embedder.encode(["what is the river number 1?", "a garden"], sparse=True, colbert=True)
    assert result_.dense is not None and result_.dense.shape == (2, 384)
    assert result_.sparse is not None and len(result_.sparse) == 2
    assert result_.colbert is not None and result_.colbert[0].shape[1] == 64


def test_cli_m3_trains_tiny_m3_with_the_m3_recipe(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(8))
    result = runner.invoke(app, m3_args(tmp_path, data, "--model", str(TINY_M3), "--set", "dropout=0"))
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert (out / "sparse_linear.pt").is_file() and (out / "colbert_linear.pt").is_file()
    recipe = json.loads((out / "trivec_training.json").read_text(encoding="utf-8"))
    assert recipe["loss"]["use_self_distill"] and recipe["model"]["train_parts"] == [
        "backbone",
        "sparse",
        "colbert",
    ]
    encoded = Embedder.from_pretrained(out, device="cpu").encode(["a river"], sparse=True, colbert=True)
    assert encoded.dense is not None and encoded.sparse is not None and encoded.colbert is not None


def test_cli_bad_train_part_is_one_clear_line(tmp_path: Path, rows_file: Path) -> None:
    result = runner.invoke(
        app, m3_args(tmp_path, rows_file, "--model", str(TINY_M3), "--train-parts", "bakbone")
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "unknown train part 'bakbone'; allowed: backbone, sparse, colbert, all, heads" in lines[0]
    assert not (tmp_path / "out").exists()

    dense_heads = [*m3_args(tmp_path, rows_file, "--model", str(TINY_M3), "--train-parts", "heads")]
    dense_heads[1] = "contrastive"
    result = runner.invoke(app, dense_heads)
    assert result.exit_code == 2 and "trained only by unified M3 fine-tuning" in result.output
    result = runner.invoke(app, m3_args(tmp_path, rows_file, "--set", "unified_finetuning=false"))
    assert result.exit_code == 2 and "`trivec train m3` is unified fine-tuning" in result.output


def test_heads_learning_rate_gives_the_heads_their_own_parameter_groups(
    tmp_path: Path, rows_file: Path
) -> None:
    overrides = quick_overrides(tmp_path, [str(rows_file)], heads_learning_rate=1e-3, learning_rate=2e-5)
    trainer = build_trainer(build_config({}, overrides, defaults=M3_DEFAULTS))
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    for group in optimizer.param_groups:
        is_backbone = {names[id(p)].split(".")[1] == "backbone" for p in group["params"]}
        assert len(is_backbone) == 1  # a group is all backbone or all heads
        expected = 2e-5 if is_backbone == {True} else 1e-3
        assert group.get("initial_lr", group["lr"]) == pytest.approx(expected)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(
        1 for p in trainer.model.parameters() if p.requires_grad
    )
    with pytest.raises(InputError, match="heads_learning_rate must be positive"):
        build_config(
            {}, quick_overrides(tmp_path, [str(rows_file)], heads_learning_rate=0.0), defaults=M3_DEFAULTS
        )
