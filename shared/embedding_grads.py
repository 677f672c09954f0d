"""A large embedding's gradient kept in one buffer for the whole run, cleared row by row.

PyTorch's embedding backward builds a fresh dense ``(rows, width)`` gradient every step: for
multilingual-e5-small that is a 250,037 x 384 fp32 tensor (384 MB) allocated, zero-filled (page faults
and all), a batch's ~700 token rows added in, and freed again by ``zero_grad`` -- while a batch
touches a few hundred rows. Measured on mE5-small, batch 32 of AFQMC, bf16, 2 threads (AMD EPYC,
AVX512-BF16): ``aten::fill_`` alone took 187 ms of a 560 ms step and freeing 30 ms; with the buffer kept
and only the rows written last step cleared, backward fell from 216-380 ms to ~170 ms and zero_grad to
~1 ms.

The gradient is the same dense tensor the optimizer and gradient clipping always saw, bit for bit,
so nothing downstream changes. Gradient accumulation works
as before: the buffer is cleared only when ``zero_grad`` has set the gradient to None since the last
backward. Under DistributedDataParallel the gradient must arrive through autograd for the reducer's
hooks, so callers use this in single-process training only.
"""

from __future__ import annotations

import torch
from torch import nn


class _Lookup(torch.autograd.Function):
    """``F.embedding`` whose backward writes into ``owner``'s buffer instead of returning a gradient."""

    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor, owner: BufferedGradEmbedding) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.owner = owner
        return nn.functional.embedding(ids, weight, owner.padding_idx)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[None, None, None]:
        (ids,) = ctx.saved_tensors
        ctx.owner.accumulate(ids, grad_out)
        return None, None, None


class BufferedGradEmbedding(nn.Module):
    """Looks up rows of an existing ``nn.Embedding``'s weight (the same Parameter, so state dicts,
    optimizers and saved models are unchanged) and keeps its gradient in a persistent buffer."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        if embedding.max_norm is not None or embedding.scale_grad_by_freq or embedding.sparse:
            raise ValueError("BufferedGradEmbedding supports plain embeddings only (no max_norm, "
                             "scale_grad_by_freq or sparse)")
        self.weight, self.padding_idx = embedding.weight, embedding.padding_idx
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim
        self._buffer: torch.Tensor | None = None
        self._written: torch.Tensor | None = None  # rows of the buffer that may be non-zero

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and self.weight.requires_grad):
            return nn.functional.embedding(ids, self.weight, self.padding_idx)
        return _Lookup.apply(ids, self.weight, self)

    def accumulate(self, ids: torch.Tensor, grad_out: torch.Tensor) -> None:
        """Add ``grad_out``'s rows into the weight's gradient (the buffer, cleared first when the
        gradient was set to None since the last backward)."""
        weight = self.weight
        if weight.grad is None:
            if self._buffer is None:
                self._buffer = torch.zeros_like(weight)
            elif self._written is not None:
                self._buffer.index_fill_(0, self._written, 0)
            self._written = None
            weight.grad = self._buffer
        rows = ids.reshape(-1)
        grads = grad_out.reshape(-1, grad_out.shape[-1]).to(weight.dtype)
        if self.padding_idx is not None:  # the padding row gets no gradient (as nn.Embedding)
            keep = rows != self.padding_idx
            rows, grads = rows[keep], grads[keep]
        # This batch's gradient per distinct row first, then one addition per element into the
        # gradient: the same sums in the same order as nn.Embedding's dense gradient and autograd's
        # accumulation (bit for bit, tests/test_embedding_grads.py).
        distinct, where = torch.unique(rows, return_inverse=True)
        batch = grads.new_zeros(len(distinct), grads.shape[1]).index_add_(0, where, grads)
        weight.grad.index_add_(0, distinct, batch)
        if weight.grad is self._buffer:
            self._written = distinct if self._written is None else torch.unique(torch.cat([self._written, distinct]))

    def __getstate__(self) -> dict:
        """Copies (``copy.deepcopy`` for a bf16 evaluation model, pickling) leave the buffer behind."""
        return {**self.__dict__, "_buffer": None, "_written": None}

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx}, buffered gradient"


def buffer_embedding_grads(model: nn.Module) -> int:
    """Replace every plain ``nn.Embedding`` in ``model`` by a :class:`BufferedGradEmbedding` over the
    same weight; returns how many were replaced. Weights tied to another module are left as they are;
    single-process training only (see the module doc)."""
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            # A weight tied to another module (e.g. an LM head) gets gradients the buffer does not track.
            if type(child) is nn.Embedding and not (child.max_norm or child.scale_grad_by_freq or child.sparse) \
                    and uses[id(child.weight)] == 1:
                setattr(parent, name, BufferedGradEmbedding(child))
                replaced += 1
    return replaced
