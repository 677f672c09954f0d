"""BERT encoder + linear head for sentence-pair classification (pure nn.Module)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from afqmc.model.bert_forward import cls_vector
from shared.dropout import use_fast_dropout

# Sizes for ``--model scratch`` (hidden, layers, heads).
SCRATCH_SIZES = {"tiny": (128, 2, 2), "small": (256, 4, 4), "base": (768, 12, 12)}


class PairForward:
    """The forward pass of every pair model (BERT's here, the other families' in afqmc.model.encoders): the
    first token's top-layer vector (``encode_cls``) -> dropout -> linear head, and the cross-entropy loss
    when labels are given."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                ) -> SequenceClassifierOutput:
        cls = self.encode_cls(input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(cls))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class BertForPairwiseCLS(PairForward, BertPreTrainedModel):
    """``[CLS]`` vector of a pooler-less BertModel -> dropout -> linear head of ``num_labels``.

    The head is sized from the config (the tutorial hard-coded 768 and 2). The parameters and the
    saved format are exactly ``BertModel`` + head; only the forward pass differs from calling
    ``self.bert(...)``: :mod:`afqmc.model.bert_forward` computes the same function with fewer operators, the top
    layer for the ``[CLS]`` query alone (``encode_cls_full`` is the plain path; tests check that both agree).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()
        use_fast_dropout(self)  # same p everywhere; the mask is cheaper on CPU (shared.dropout)

    def encode_cls(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The top layer's ``[CLS]`` vector, ``(batch, hidden)``, by :func:`afqmc.model.bert_forward.cls_vector`."""
        return cls_vector(self.bert, input_ids, attention_mask, token_type_ids)

    def encode_cls_full(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The same vector through the plain ``BertModel`` forward (every position of every layer)."""
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state[:, 0]


def inference_model(model: nn.Module, dtype: torch.dtype | None, copy_weights: bool) -> nn.Module:
    """The model that evaluation and prediction run: its weights cast once to ``dtype`` (None: as is).

    For inference a bf16 copy of the weights beats bf16 autocast, which re-casts activations around
    every matmul: about 12% faster on CPU at AFQMC's sizes, with the same dev predictions as autocast
    on STS-B-zh (both differ from fp32 by ~1e-3 in probability). ``copy_weights`` keeps ``model``
    itself untouched (training goes on with its fp32 weights after each dev evaluation).
    """
    if dtype is None:
        return model
    model = (copy.deepcopy(model) if copy_weights else model).to(dtype)
    if getattr(model.config, "problem_type", None) == "regression":
        # A score in bf16 has 3 significant digits (4.21875, 4.25): the one-output head stays fp32.
        model.classifier.float().register_forward_pre_hook(lambda _, args: (args[0].float(),))
    return model


def scratch_config(vocab_size: int, size: str, num_labels: int, max_length: int,
                   pad_token_id: int, match_types: bool) -> BertConfig:
    """A new BERT of ``size``; ``match_types`` adds token types 2/3 (see ``afqmc.data.batches.match_token_types``)
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
