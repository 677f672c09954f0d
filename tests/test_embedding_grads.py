"""The buffered embedding gradient equals nn.Embedding's, step after step, with accumulation and
padding, and copies do not carry the buffer (shared.embedding_grads, issue 25)."""

import copy
import pickle

import torch
from torch import nn

from shared.embedding_grads import BufferedGradEmbedding, buffer_embedding_grads


def _pair(padding_idx=None):
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Embedding(50, 8, padding_idx=padding_idx), nn.Linear(8, 3))
    buffered = copy.deepcopy(plain)
    assert buffer_embedding_grads(buffered) == 1
    assert isinstance(buffered[0], BufferedGradEmbedding) and buffered[0].weight is not plain[0].weight
    assert buffered.state_dict().keys() == plain.state_dict().keys()
    return plain, buffered


def _backward(model, ids):
    model(ids).square().sum().backward()


def test_gradients_equal_plain_embedding_over_steps_with_accumulation_and_padding():
    plain, buffered = _pair(padding_idx=0)
    opts = [torch.optim.AdamW(m.parameters(), lr=0.1) for m in (plain, buffered)]
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        for _ in range(1 + step % 2):  # steps 1 and 3 accumulate two batches
            ids = torch.randint(0, 50, (4, 6), generator=gen)
            ids[0, :2] = 0  # padding rows get no gradient
            for m in (plain, buffered):
                _backward(m, ids)
        assert torch.equal(plain[0].weight.grad, buffered[0].weight.grad), step
        assert torch.count_nonzero(buffered[0].weight.grad[0]) == 0
        for opt in opts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        assert torch.equal(plain[0].weight, buffered[0].weight)
    grad = buffered[0]._buffer
    ids = torch.tensor([[3, 3, 7]])
    _backward(buffered, ids)  # after zero_grad: only this batch's rows remain
    assert buffered[0].weight.grad is grad and set(torch.nonzero(grad.abs().sum(1)).flatten().tolist()) == {3, 7}


def test_no_grad_and_frozen_lookups_match_and_copies_leave_the_buffer():
    plain, buffered = _pair()
    ids = torch.tensor([[1, 2, 3]])
    _backward(buffered, ids)
    with torch.no_grad():
        assert torch.equal(plain(ids), buffered(ids))
    twin = copy.deepcopy(buffered)
    assert twin[0]._buffer is None and pickle.loads(pickle.dumps(buffered))[0]._buffer is None
    buffered[0].weight.requires_grad_(False)
    assert torch.equal(buffered(ids), plain(ids))


def test_a_weight_tied_to_another_module_is_left_alone():
    emb = nn.Embedding(20, 4)
    head = nn.Linear(4, 20, bias=False)
    head.weight = emb.weight  # tied, as in a masked-LM head
    model = nn.ModuleDict({"emb": emb, "head": head, "other": nn.Embedding(5, 4)})
    assert buffer_embedding_grads(model) == 1
    assert type(model["emb"]) is nn.Embedding and isinstance(model["other"], BufferedGradEmbedding)
