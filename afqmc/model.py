"""BERT encoder + linear head for sentence-pair classification (pure nn.Module)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertLayer

# Sizes for ``--model scratch`` (hidden, layers, heads).
SCRATCH_SIZES = {"tiny": (128, 2, 2), "small": (256, 4, 4), "base": (768, 12, 12)}


class BertForPairwiseCLS(BertPreTrainedModel):
    """``[CLS]`` vector of a pooler-less BertModel -> dropout -> linear head of ``num_labels``.

    The head is sized from the config (the tutorial hard-coded 768 and 2). The parameters and the
    saved format are exactly ``BertModel`` + head; only the forward pass differs from calling
    ``self.bert(...)``: the head reads nothing but the ``[CLS]`` vector of the top layer, so that layer
    is computed for the ``[CLS]`` query alone (keys and values still cover every token). The result
    is the same function, but the top layer's query, output projection and feed-forward shrink from
    every token to one, which saves about a fifth of the compute of a 4-layer model in training and
    prediction (``encode_cls_full`` is the plain path; tests check that both agree).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                ) -> SequenceClassifierOutput:
        cls = self.encode_cls(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(cls))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def encode_cls(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The top layer's ``[CLS]`` vector, ``(batch, hidden)``, computing the top layer for it alone."""
        if self.config._attn_implementation not in ("sdpa", "eager"):  # masks in other layouts
            return self.encode_cls_full(input_ids, attention_mask, token_type_ids)
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        # The same mask BertModel builds for the configured attention implementation (None: no padding).
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=attention_mask)
        *lower, top = self.bert.encoder.layer
        for layer in lower:
            hidden = layer(hidden, mask)
        return _cls_only_layer(top, hidden, None if mask is None else mask[:, :, :1])

    def encode_cls_full(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The same vector through the plain ``BertModel`` forward (every position of every layer)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state[:, 0]


def use_fastest_attention(model: BertPreTrainedModel, device: torch.device) -> None:
    """Pick the attention kernel for ``device``: plain matmul-softmax on CPU, SDPA elsewhere.

    Both compute the same function. At AFQMC's ~30-token pairs, PyTorch's CPU flash-attention kernel
    made prediction about 8% slower end to end than the plain path (training speed was equal).
    """
    model.set_attn_implementation("eager" if device.type == "cpu" else "sdpa")


def inference_model(model: nn.Module, dtype: torch.dtype | None, copy_weights: bool) -> nn.Module:
    """The model that evaluation and prediction run: its weights cast once to ``dtype`` (None: as is).

    For inference a bf16 copy of the weights beats bf16 autocast, which re-casts activations around
    every matmul: about 12% faster on CPU at AFQMC's sizes, with the same dev predictions as autocast
    on STS-B-zh (both differ from fp32 by ~1e-3 in probability). ``copy_weights`` keeps ``model``
    itself untouched (training goes on with its fp32 weights after each dev evaluation).
    """
    if dtype is None:
        return model
    return (copy.deepcopy(model) if copy_weights else model).to(dtype)


def _cls_only_layer(layer: BertLayer, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``layer(hidden)[:, 0]`` with the query, output projection and feed-forward run for position 0 only.

    ``mask`` is the layer's attention mask restricted to the first query row (bool or additive float,
    as ``create_bidirectional_mask`` made it).
    """
    attn = layer.attention.self
    batch, length, width = hidden.shape
    heads, head_size = attn.num_attention_heads, attn.attention_head_size
    first = hidden[:, :1]
    q = attn.query(first).view(batch, 1, heads, head_size).transpose(1, 2)
    k = attn.key(hidden).view(batch, length, heads, head_size).transpose(1, 2)
    v = attn.value(hidden).view(batch, length, heads, head_size).transpose(1, 2)
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling,
                                             dropout_p=attn.dropout.p if attn.training else 0.0)
    attended = layer.attention.output(context.transpose(1, 2).reshape(batch, 1, width), first)
    return layer.output(layer.intermediate(attended), attended)[:, 0]


def scratch_config(vocab_size: int, size: str, num_labels: int, max_length: int,
                   pad_token_id: int, match_types: bool) -> BertConfig:
    """A new BERT of ``size``; ``match_types`` adds token types 2/3 (see ``afqmc.data.match_token_types``)
    and records in the config that inputs must carry them."""
    hidden, layers, heads = SCRATCH_SIZES[size]
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=4 * hidden,
                      max_position_embeddings=max(512, max_length), num_labels=num_labels,
                      pad_token_id=pad_token_id, type_vocab_size=4 if match_types else 2,
                      match_token_types=match_types)


def uses_match_types(config: BertConfig) -> bool:
    """Whether the model was trained on exact-match token types (saved in its config.json)."""
    return bool(getattr(config, "match_token_types", False))
