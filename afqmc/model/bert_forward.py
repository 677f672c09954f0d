"""BertModel's encoder forward for the ``[CLS]`` vector, computed with fewer operators.

The same function of the same parameters as ``BertModel(...).last_hidden_state[:, 0]`` (tests compare
them), so checkpoints and the saved format are plain BertModel. What differs is only how it is computed:

- the top layer runs its query, output projection and feed-forward for ``[CLS]`` alone (the head reads
  nothing else), and attends without projecting every token to a key and a value (:func:`_cls_context`):
  about a fifth of a 4-layer model's compute;
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
    (checked on CPU only: on a GPU the check would wait for the device every batch; and not while
    ``torch.export`` traces the model for ONNX, where the graph must serve padded batches too)."""
    if attention_mask is None or (attention_mask.device.type == "cpu" and not torch.compiler.is_exporting()
                                  and bool(attention_mask.all())):
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


def _cls_context(attn: nn.Module, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention's output for the ``[CLS]`` query alone, ``(batch, 1, width)``, without projecting every
    token to a key and a value.

    Per head, with ``h_j`` the tokens' hidden states: ``q . (Wk h_j + bk) = (Wk^T q) . h_j + q . bk``, and
    ``sum_j p_j (Wv h_j + bv) = Wv (sum_j p_j h_j) + bv sum_j p_j`` (the sum of ``p`` is 1 but for
    dropout). So the scores are one product of the hidden states with ``Wk^T q`` and the context one
    product of ``Wv`` with the probability-weighted hidden states: ``heads x length x width`` multiply-adds
    where the keys and values cost ``2 x length x width^2``. ``q . bk`` changes no probability; it is
    kept so that every parameter takes part as in BertModel (AdamW treats a parameter without a gradient
    differently from one with a zero gradient).
    """
    batch, length, width = hidden.shape
    heads, size = attn.num_attention_heads, attn.attention_head_size
    q = attn.query(hidden[:, 0]).view(batch, heads, size)
    key_weight, value_weight = (p.weight.view(heads, size, width) for p in (attn.key, attn.value))
    scores = torch.bmm(torch.einsum("bhs,hsw->bhw", q, key_weight), hidden.transpose(1, 2))  # (batch, heads, len)
    scores = (scores + (q * attn.key.bias.view(heads, size)).sum(-1, keepdim=True)) * attn.scaling
    if mask is not None:
        scores = scores.masked_fill(~mask[:, 0], torch.finfo(scores.dtype).min)
    probs = dropout_fn(scores.softmax(dim=-1), attn.dropout.p, attn.training)
    context = torch.einsum("bhw,hsw->bhs", torch.bmm(probs, hidden), value_weight)
    context = context + probs.sum(dim=-1, keepdim=True) * attn.value.bias.view(heads, size)
    return context.reshape(batch, 1, width)


def encoder_layer(layer: BertLayer, hidden: torch.Tensor, mask: torch.Tensor | None,
                  cls_only: bool = False) -> torch.Tensor:
    """``layer(hidden)``; with ``cls_only`` only position 0 of the output, shape ``(batch, 1, width)``."""
    attn = layer.attention.self
    if cls_only:
        attended = layer.attention.output(_cls_context(attn, hidden, mask), hidden[:, :1])
        return layer.output(layer.intermediate(attended), attended)
    batch, length, width = hidden.shape
    heads, head_size = attn.num_attention_heads, attn.attention_head_size
    q, k, v = _fused(hidden, (attn.query, attn.key, attn.value), heads, head_size)
    dropout = attn.dropout.p if attn.training else 0.0
    context = _attend(q, k, v, mask, attn.scaling, dropout, attn.training)
    context = context.transpose(1, 2).reshape(batch, length, width)
    attended = layer.attention.output(context, hidden)
    return layer.output(layer.intermediate(attended), attended)
