"""The encoder-family seam: which pretrained encoders a pair model can hold, and its class for each.

Every family gets the same head (the first token's vector -> dropout -> linear, :class:`PairHead`) and
the same saved format: an ordinary Hugging Face directory whose ``config.json`` names the family
(``model_type``) and the class (``architectures``: ``BertForPairwiseCLS``, ``XLMRobertaForPairwiseCLS``,
...), with the encoder's weights under the family's own prefix (``bert.``, ``roberta.``, ``electra.``...)
as in its ``...ForSequenceClassification``. So a checkpoint of the family loads into it with
``from_pretrained`` whether its keys carry the prefix (a ``...ForMaskedLM``/``...ForPreTraining``
checkpoint) or not (a bare ``...Model``).

- BERT (``model_type`` ``bert``: bert-base-chinese, chinese-roberta-wwm-ext, MacBERT, multilingual-e5,
  any BERT with any fast tokenizer) takes the fast forward of :mod:`afqmc.model.bert_forward`
  (:class:`afqmc.model.bert.BertForPairwiseCLS`).
- The other families run their own Hugging Face forward (``AutoModel``), through a class made here
  from the family's own ``PreTrainedModel`` (its weight init, prefix and config class).

This module is the only place that asks which family a model is.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch
from torch import nn
from transformers import MODEL_MAPPING, PretrainedConfig, PreTrainedModel

from afqmc.model.bert import BertForPairwiseCLS, PairForward
from shared.errors import UserError

# Encoder families run end to end in the tests (tests/test_encoders.py builds a tiny one of each).
FAMILIES = ("bert", "roberta", "xlm-roberta", "ernie", "electra", "deberta-v2")
SUPPORTED_TEXT = ("encoder families: " + ", ".join(FAMILIES) + " (BERT-style checkpoints with any fast tokenizer: "
                  "WordPiece, Unigram/SentencePiece or BPE)")


class PairHead(PairForward):
    """The pair head over a Hugging Face encoder that runs its own forward: the first token's
    (``[CLS]``/``<s>``) top-layer vector -> dropout -> linear of ``num_labels``, as
    :class:`afqmc.model.bert.BertForPairwiseCLS` has over BERT. Mixed into a family's PreTrainedModel."""

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        setattr(self, self.base_model_prefix, _encoder(config))
        dropout = getattr(config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def encode_cls(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The top layer's first-token vector, ``(batch, hidden)``."""
        # Token types only where the model has an embedding for them (XLM-R has one row, DeBERTa-v2 none).
        types = token_type_ids if int(getattr(self.config, "type_vocab_size", 0) or 0) > 1 else None
        encoder = getattr(self, self.base_model_prefix)
        return encoder(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=types).last_hidden_state[:, 0]


def _encoder(config: PretrainedConfig) -> nn.Module:
    """The family's bare encoder, without a pooler (the head reads the first token, not a pooler)."""
    cls = MODEL_MAPPING[type(config)]
    if "add_pooling_layer" in inspect.signature(cls.__init__).parameters:
        return cls(config, add_pooling_layer=False)
    return cls(config)


def family(config: PretrainedConfig) -> str:
    return str(getattr(config, "model_type", "") or "unknown")


def check_supported(config: PretrainedConfig, what: str) -> None:
    """Refuse, in one line, what cannot be a pair encoder here: decoder-only and encoder-decoder models,
    and encoder families not run end to end in the tests."""
    name = family(config)
    if name in FAMILIES and not getattr(config, "is_encoder_decoder", False) and not getattr(config, "is_decoder",
                                                                                            False):
        return
    kind = "an encoder-decoder model" if getattr(config, "is_encoder_decoder", False) else \
        "a decoder" if getattr(config, "is_decoder", False) or name in _DECODERS else "not a supported encoder family"
    raise UserError(f"{what}: model_type {name!r} is {kind}; a pair model needs a bidirectional encoder. "
                    f"Supported {SUPPORTED_TEXT}")


# Common decoder-only families, named as such in the refusal.
_DECODERS = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi", "phi3", "bloom",
             "opt", "falcon", "baichuan", "chatglm")


def pair_model_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The pair-model class for ``config``'s family (:func:`check_supported` first)."""
    if family(config) == "bert":
        return BertForPairwiseCLS
    return _generic_class(MODEL_MAPPING[type(config)])


@functools.cache
def _generic_class(base: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """``<Family>ForPairwiseCLS``: :class:`PairHead` over ``base`` (e.g. XLMRobertaModel), a subclass of the
    family's own PreTrainedModel so that its weight init, key prefix and config class apply."""
    family_base = next(c for c in base.__mro__[1:] if issubclass(c, PreTrainedModel) and c is not PreTrainedModel)
    name = base.__name__.removesuffix("Model") + "ForPairwiseCLS"
    return type(name, (PairHead, family_base), {"__module__": __name__, "__doc__": PairHead.__doc__})


def has_fast_forward(model: nn.Module) -> bool:
    """Whether ``model`` runs the BERT fast path (the masked-LM warm-up of scratch models needs it)."""
    return isinstance(model, BertForPairwiseCLS)


def describe(model: Any) -> str:
    """``bert (fast forward)`` or ``xlm-roberta (its own forward)``, for the start-up line."""
    return f"{family(model.config)} ({'fast forward' if has_fast_forward(model) else 'its own forward'})"
