"""BertModel's encoder forward for the ``[CLS]`` vector, computed with fewer operators.

The same function of the same parameters as ``BertModel(...).last_hidden_state[:, 0]`` (tests compare
them), so checkpoints and the saved format are plain BertModel. What differs is only how it is computed:

- the top layer runs its query, output projection and feed-forward for ``[CLS]`` alone (the head reads
  nothing else; keys and values still cover every token): about a fifth of a 4-layer model's compute;
- query, key and value are one matrix product against the three weights concatenated (one GEMM of
  3x the width instead of three, and one weight-gradient GEMM in the backward pass);
- the padding mask is built once per batch as a boolean ``(batch, 1, 1, length)`` tensor (on CPU None when
  the batch has no padding, as length-sorted evaluation batches mostly do) instead of HF's per-call masks;
- attention is ``scaled_dot_product_attention`` (PyTorch's fused kernels) everywhere but CPU training,
  which takes the plain matmul-softmax path so that its dropout is :mod:`shared.dropout`'s cheap one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel
from transformers.models.bert.modeling_bert import BertLayer

from shared.dropout import dropout as dropout_fn


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(batch, 1, 1, length)`` True where a key may be attended to; None when nothing is padding
    (checked on CPU only: on a GPU the check would wait for the device every batch)."""
    if attention_mask is None or (attention_mask.device.type == "cpu" and bool(attention_mask.all())):
        return None
    return attention_mask[:, None, None, :].bool()


def cls_vector(bert: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
               token_type_ids: torch.Tensor | None) -> torch.Tensor:
    """The top layer's ``[CLS]`` vector, ``(batch, hidden)``."""
    hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    mask = padding_mask(attention_mask)
    *lower, top = bert.encoder.layer
    for layer in lower:
        hidden = encoder_layer(layer, hidden, mask)
    return encoder_layer(top, hidden, mask, cls_only=True)[:, 0]


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float,
            dropout: float, training: bool) -> torch.Tensor:
    """Multi-head attention ``(batch, heads, queries, head_size)``; ``dropout`` on the probabilities."""
    if q.device.type == "cpu" and training:  # SDPA's CPU kernels were slower here in training
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        return torch.matmul(dropout_fn(scores.softmax(dim=-1), dropout, training), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, dropout_p=dropout)


def _fused(hidden: torch.Tensor, projections: tuple[nn.Linear, ...], heads: int, head_size: int
           ) -> tuple[torch.Tensor, ...]:
    """The ``projections`` of ``hidden`` as one matrix product against their weights concatenated, each
    returned as ``(batch, heads, length, head_size)``."""
    weight = torch.cat([p.weight for p in projections])
    bias = torch.cat([p.bias for p in projections])
    batch, length, _ = hidden.shape
    out = F.linear(hidden, weight, bias).view(batch, length, len(projections), heads, head_size)
    return out.permute(2, 0, 3, 1, 4).unbind(0)


def encoder_layer(layer: BertLayer, hidden: torch.Tensor, mask: torch.Tensor | None,
                  cls_only: bool = False) -> torch.Tensor:
    """``layer(hidden)``; with ``cls_only`` only position 0 of the output, shape ``(batch, 1, width)``."""
    attn = layer.attention.self
    batch, _, width = hidden.shape
    heads, head_size = attn.num_attention_heads, attn.attention_head_size
    if cls_only:  # query for [CLS] only; keys and values for every token, as one GEMM
        queries = hidden[:, :1]
        q = attn.query(queries).view(batch, 1, heads, head_size).transpose(1, 2)
        k, v = _fused(hidden, (attn.key, attn.value), heads, head_size)
    else:
        queries = hidden
        q, k, v = _fused(hidden, (attn.query, attn.key, attn.value), heads, head_size)
    dropout = attn.dropout.p if attn.training else 0.0
    context = _attend(q, k, v, mask, attn.scaling, dropout, attn.training)
    context = context.transpose(1, 2).reshape(batch, queries.shape[1], width)
    attended = layer.attention.output(context, queries)
    return layer.output(layer.intermediate(attended), attended)
