"""BERT encoder + linear head for sentence-pair classification (pure nn.Module)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

# Sizes for ``--model scratch`` (hidden, layers, heads).
SCRATCH_SIZES = {"tiny": (128, 2, 2), "small": (256, 4, 4), "base": (768, 12, 12)}


class BertForPairwiseCLS(BertPreTrainedModel):
    """``[CLS]`` vector of a pooler-less BertModel -> dropout -> linear head of ``num_labels``.

    The head is sized from the config (the tutorial hard-coded 768 and 2).
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
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(hidden[:, 0]))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def scratch_config(vocab_size: int, size: str, num_labels: int, max_length: int,
                   pad_token_id: int) -> BertConfig:
    hidden, layers, heads = SCRATCH_SIZES[size]
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=4 * hidden,
                      max_position_embeddings=max(512, max_length), num_labels=num_labels,
                      pad_token_id=pad_token_id)
