"""RetroMAEModel: enhanced decoding semantics, training progress, and the saved encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM, PreTrainedTokenizerBase

from tests.conftest import TINY_M3
from tests.training.retromae.conftest import FIXTURE_CORPUS
from trivec.models import M3Model
from trivec.training.csv_log import CSV_LOG_FILE
from trivec.training.retromae import (
    RetroMAECollator,
    RetroMAEModel,
    build_arguments,
    build_trainer,
    train_retromae,
)

TINY_BERT = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
}


def tiny_bert(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> BertForMaskedLM:
    torch.manual_seed(seed)
    return BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), **TINY_BERT))


@pytest.fixture
def batch(bert_tokenizer: PreTrainedTokenizerBase, english_texts: list[str]) -> dict[str, torch.Tensor]:
    collator = RetroMAECollator(bert_tokenizer, max_seq_length=48, generator=torch.Generator().manual_seed(0))
    return collator(english_texts[:4])


def test_a_position_never_reads_its_own_token(
    bert_tokenizer: PreTrainedTokenizerBase, batch: dict[str, torch.Tensor]
) -> None:
    """Changing token j in the content stream leaves row j unchanged and changes the rows that see j."""
    model = RetroMAEModel(tiny_bert(bert_tokenizer)).eval()
    sentence = torch.randn(4, 64)
    ids, attention = batch["decoder_input_ids"], batch["decoder_attention_mask"]
    with torch.no_grad():
        before = model.decode(sentence, ids, attention)
        for j in (1, 5, 17):
            changed = ids.clone()
            changed[:, j] = (changed[:, j] + 7) % len(bert_tokenizer)
            after = model.decode(sentence, changed, attention)
            assert torch.allclose(after[:, j], before[:, j], atol=1e-6)
            sees = attention[:, :, j]
            moved = (after - before).abs().amax(-1) > 1e-6
            assert torch.equal(moved, sees)
        # every row depends on the sentence embedding
        other = model.decode(sentence + 1.0, ids, attention)
        assert bool(((other - before).abs().amax(-1) > 1e-4).all())


def test_decoder_loss_reaches_the_encoder(
    bert_tokenizer: PreTrainedTokenizerBase, batch: dict[str, torch.Tensor]
) -> None:
    model = RetroMAEModel(tiny_bert(bert_tokenizer), encoder_loss_weight=0.0)
    out = model(**batch)
    assert out.loss is not None and out.decoder_loss is not None
    assert torch.allclose(out.loss, out.decoder_loss)
    out.loss.backward()
    layer = model.lm.bert.encoder.layer[-1].output.dense.weight
    assert layer.grad is not None and float(layer.grad.abs().sum()) > 0
    assert model.decoder is not None and model.decoder.query.weight.grad is not None


def test_mlm_objective_has_no_decoder(bert_tokenizer: PreTrainedTokenizerBase) -> None:
    collator = RetroMAECollator(bert_tokenizer, with_decoder=False)
    model = RetroMAEModel(tiny_bert(bert_tokenizer), with_decoder=False)
    out = model(**collator(["a plain masked language model baseline"]))
    assert model.decoder is None and out.decoder_loss is None
    assert out.loss is not None and torch.isfinite(out.loss)


def test_loss_decreases_and_encoder_loads_for_fine_tuning(tmp_path: Path) -> None:
    """Pre-train a tiny BERT (MiniLM tokenizer) on the cranfield abstracts, then fine-tune it as an M3Model."""
    encoder_json = tmp_path / "tiny.json"
    encoder_json.write_text(json.dumps({"model_type": "bert", **TINY_BERT}), encoding="utf-8")
    recipe, training = build_arguments(
        overrides={
            "config": str(encoder_json),
            "tokenizer": "all-MiniLM-L6-v2",
            "corpus": [str(FIXTURE_CORPUS)],
            "output_dir": str(tmp_path / "run"),
            "max_seq_length": 32,
            "per_device_train_batch_size": 8,
            "learning_rate": 2e-3,
            "max_steps": 30,
            "logging_steps": 5,
            "save_strategy": "no",
            "report_to": [],
            "seed": 0,
            "disable_tqdm": True,
        }
    )
    encoder_dir = train_retromae(recipe, training)
    with (tmp_path / "run" / CSV_LOG_FILE).open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("loss")]
    assert len(rows) == 6
    for key in ("loss", "encoder_loss", "decoder_loss"):
        first, last = float(rows[0][key]), float(rows[-1][key])
        assert last < first - 0.5, (key, first, last)

    model = M3Model.from_pretrained(encoder_dir, heads="init")
    assert model.pooling == "cls" and model.has_sparse and model.has_colbert
    lm = AutoModelForMaskedLM.from_pretrained(encoder_dir).eval()
    tokens = model.tokenizer(
        ["aerodynamic heating", "wing flutter at supersonic speed"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        cls = lm.bert(**tokens).last_hidden_state[:, 0]
        dense = model(tokens["input_ids"], tokens["attention_mask"]).dense
    assert dense is not None and torch.allclose(dense, F.normalize(cls, dim=-1), atol=1e-5)
    # one contrastive step runs through all three heads
    model.train()
    out = model(tokens["input_ids"], tokens["attention_mask"], sparse=True, colbert=True)
    assert out.dense is not None and out.token_weights is not None and out.colbert is not None
    scores = out.dense @ out.dense.T / 0.05
    loss = F.cross_entropy(scores, torch.arange(2)) + out.token_weights.sum() * 0 + out.colbert.sum() * 0
    loss.backward()
    assert model.backbone.embeddings.word_embeddings.weight.grad is not None


def test_xlmr_family_continued_pretraining(tmp_path: Path) -> None:
    """Continue from the tiny XLM-R checkpoint: new lm_head, RoBERTa positions, saved encoder reloads."""
    recipe, training = build_arguments(
        overrides={
            "model": str(TINY_M3),
            "corpus": [str(FIXTURE_CORPUS)],
            "output_dir": str(tmp_path / "run"),
            "max_seq_length": 48,
            "per_device_train_batch_size": 8,
            "max_steps": 3,
            "activation_checkpointing": True,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
        }
    )
    trainer = build_trainer(recipe, training)
    trainer.train()
    assert trainer.model.lm.is_activation_checkpointing  # type: ignore[union-attr]
    trainer.save_model()
    encoder_dir = tmp_path / "run" / "encoder_model"
    assert (tmp_path / "run" / "model.safetensors").is_file()
    model = M3Model.from_pretrained(encoder_dir, heads="init")
    trained = trainer.model.lm.roberta.state_dict()  # type: ignore[union-attr]
    for name, value in model.backbone.state_dict().items():
        if name in trained:
            assert torch.equal(value, trained[name]), name
