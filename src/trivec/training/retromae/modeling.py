"""`RetroMAEModel`: a masked-LM encoder plus a one-layer enhanced decoder (FlagEmbedding's RetroMAE; docs/retromae.md).

The encoder reads the masked text; its last CLS state is the sentence embedding `h`. The decoder rebuilds
every token of the text from `h` alone plus a random half of the other tokens:
- query stream: `Emb(h + pos_i)` for every position i (the encoder's own embedding module on `h`);
- content stream: `[h ; Emb(x_1..x_{L−1})]` on the uncorrupted ids;
- one post-LN transformer layer, queries from the first stream, keys/values from the second, under the
  position-specific mask built by the collator; logits from the LM's own (tied) MLM head.
Loss = encoder MLM + decoder reconstruction (weights configurable, 1 and 1 by default).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput

from trivec.errors import CheckpointError

ENCODER_DIR = "encoder_model"
DECODER_FILE = "decoder.safetensors"
MLM_HEAD_ATTRIBUTES = ("cls", "lm_head")  # BERT family, RoBERTa / XLM-R family


@dataclass
class RetroMAEOutput(ModelOutput):
    """Total loss and its two parts."""

    loss: torch.Tensor | None = None
    encoder_loss: torch.Tensor | None = None
    decoder_loss: torch.Tensor | None = None


class EnhancedDecoderLayer(nn.Module):
    """One BERT-style layer whose queries and keys/values come from two different streams."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-12,
        hidden_dropout: float = 0.1,
        attention_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise CheckpointError(f"hidden size {hidden_size} is not a multiple of {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.attention_output = nn.Linear(hidden_size, hidden_size)
        self.attention_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.intermediate = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[hidden_act]
        self.output = nn.Linear(intermediate_size, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout)
        self.attention_dropout = attention_dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, content: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """query, content: `[B, L, H]`; attention: bool `[B, L, L]`, True where row may attend to column."""
        batch, length, hidden = query.shape
        context = F.scaled_dot_product_attention(
            self._heads(self.query(query)),
            self._heads(self.key(content)),
            self._heads(self.value(content)),
            attn_mask=attention.unsqueeze(1),
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        context = context.transpose(1, 2).reshape(batch, length, hidden)
        states = self.attention_norm(self.dropout(self.attention_output(context)) + query)
        ffn = self.output(self.activation(self.intermediate(states)))
        return self.output_norm(self.dropout(ffn) + states)


def mlm_head(lm: PreTrainedModel) -> nn.Module:
    """The module mapping last hidden states to vocabulary logits (`cls` for BERT, `lm_head` for RoBERTa)."""
    for name in MLM_HEAD_ATTRIBUTES:
        head = getattr(lm, name, None)
        if isinstance(head, nn.Module):
            return head
    raise CheckpointError(
        f"{type(lm).__name__} has no MLM head module named {' or '.join(MLM_HEAD_ATTRIBUTES)}; RetroMAE "
        "supports BERT-family and RoBERTa/XLM-R-family masked-LM models"
    )


class RetroMAEModel(nn.Module):
    """Masked-LM encoder + enhanced decoder; `with_decoder=False` gives plain (whole-word) MLM."""

    def __init__(
        self,
        lm: PreTrainedModel,
        with_decoder: bool = True,
        encoder_loss_weight: float = 1.0,
        decoder_loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.lm = lm
        mlm_head(lm)  # fail early on a model without a usable head
        if not hasattr(lm.base_model, "embeddings"):
            raise CheckpointError(f"{type(lm.base_model).__name__} exposes no `embeddings` module")
        self.encoder_loss_weight = encoder_loss_weight
        self.decoder_loss_weight = decoder_loss_weight
        self.decoder: EnhancedDecoderLayer | None = None
        if with_decoder:
            config = lm.config
            self.decoder = EnhancedDecoderLayer(
                hidden_size=config.hidden_size,
                num_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size,
                hidden_act=config.hidden_act,
                layer_norm_eps=config.layer_norm_eps,
                hidden_dropout=config.hidden_dropout_prob,
                attention_dropout=config.attention_probs_dropout_prob,
            )
            self._init_decoder(float(getattr(config, "initializer_range", 0.02)))

    def _init_decoder(self, std: float) -> None:
        """BERT's initialisation (normal(0, initializer_range) weights, zero biases, unit LayerNorm)."""
        assert self.decoder is not None
        for module in self.decoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def base(self) -> Any:
        """The bare encoder inside the LM (`bert`, `roberta`, …); a property so it is not saved twice."""
        return self.lm.base_model

    @property
    def head(self) -> nn.Module:
        return mlm_head(self.lm)

    @property
    def config(self) -> Any:  # the Trainer reads a few fields from `model.config`
        return self.lm.config

    def activation_checkpointing_enable(
        self,
        activation_checkpointing_kwargs: dict | None = None,
        every_n_layers: int = 1,
        offload: bool = False,
    ) -> None:
        """Checkpoint the encoder's layers (the Trainer calls this for `activation_checkpointing=True`,
        alias `gradient_checkpointing=True`); the one decoder layer is cheap and left as is."""
        self.lm.activation_checkpointing_enable(
            activation_checkpointing_kwargs=activation_checkpointing_kwargs,
            every_n_layers=every_n_layers,
            offload=offload,
        )

    def _mlm_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the MLM head over the labelled positions only (no `[B, L, V]` logits)."""
        keep = labels != -100
        if not bool(keep.any()):
            return hidden.sum() * 0.0
        logits = self.head(hidden[keep])
        return F.cross_entropy(logits.float(), labels[keep])

    def decode(
        self, sentence: torch.Tensor, decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Enhanced decoding: states `[B, L, H]` rebuilding every position from the sentence embedding
        `sentence [B, H]` and the positions each row may see (`decoder_attention_mask [B, L, L]`)."""
        if self.decoder is None:
            raise ValueError("this model was built without a decoder (objective 'mlm')")
        embeddings = self.base.embeddings
        batch, length = decoder_input_ids.shape
        slot = sentence.unsqueeze(1)
        content = torch.cat([slot, embeddings(input_ids=decoder_input_ids)[:, 1:]], dim=1)
        query = embeddings(inputs_embeds=slot.expand(batch, length, slot.shape[-1]))
        return self.decoder(query, content, decoder_attention_mask.bool())

    def forward(
        self,
        encoder_input_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        encoder_labels: torch.Tensor,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_labels: torch.Tensor | None = None,
    ) -> RetroMAEOutput:
        hidden = self.base(
            input_ids=encoder_input_ids, attention_mask=encoder_attention_mask
        ).last_hidden_state
        encoder_loss = self._mlm_loss(hidden, encoder_labels)
        loss = self.encoder_loss_weight * encoder_loss
        decoder_loss = None
        if self.decoder is not None:
            if decoder_input_ids is None or decoder_attention_mask is None or decoder_labels is None:
                raise ValueError(
                    "the RetroMAE decoder needs decoder_input_ids, decoder_attention_mask, decoder_labels"
                )
            decoded = self.decode(hidden[:, 0], decoder_input_ids, decoder_attention_mask)
            decoder_loss = self._mlm_loss(decoded, decoder_labels)
            loss = loss + self.decoder_loss_weight * decoder_loss
        return RetroMAEOutput(
            loss=loss,
            encoder_loss=encoder_loss.detach(),
            decoder_loss=decoder_loss.detach() if decoder_loss is not None else None,
        )

    # ------------------------------------------------------------------ saving
    def save_encoder(
        self, directory: str | os.PathLike[str], tokenizer: PreTrainedTokenizerBase | None = None
    ) -> Path:
        """Write the encoder (`AutoModelForMaskedLM` layout, loadable by `AutoModel` and `M3Model`) and the
        tokenizer to `directory`, with a trivec config declaring CLS pooling (what RetroMAE trains)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(out)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        (out / "trivec_config.json").write_text(
            json.dumps({"pooling": "cls", "normalize": True}, indent=2),
            encoding="utf-8",
        )
        return out
