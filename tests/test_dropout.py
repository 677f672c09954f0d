"""shared.dropout: the hashed CPU mask keeps 1-p of the elements, scales like F.dropout, is reproducible
from PyTorch's generator, and leaves eval mode and the saved format alone."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shared.dropout import FastDropout, dropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_scale_and_independence(p):
    x = torch.ones(400, 1000)
    torch.manual_seed(0)
    y = dropout(x, p, training=True)
    kept = y != 0
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / (1 - p))
    assert kept.float().mean().item() == pytest.approx(1 - p, abs=0.005)  # 400k draws: sd < 0.001
    # Neighbouring elements and a second call are uncorrelated.
    flat = kept.flatten().float()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()) < 0.01
    again = dropout(x, p, training=True) != 0
    assert abs(torch.corrcoef(torch.stack([flat, again.flatten().float()]))[0, 1].item()) < 0.01
    # Expectation preserved, as F.dropout's.
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)


def test_reproducible_from_the_global_generator_and_gradients_flow():
    x = torch.randn(8, 16, requires_grad=True)
    torch.manual_seed(3)
    a = dropout(x, 0.3, training=True)
    torch.manual_seed(3)
    b = dropout(x, 0.3, training=True)
    assert torch.equal(a, b)
    (g,) = torch.autograd.grad(a.sum(), x)
    assert torch.equal(g, (a != 0).float() / 0.7)


def test_eval_identity_edges_and_module_swap():
    x = torch.randn(4, 5)
    assert dropout(x, 0.5, training=False) is x and torch.equal(dropout(x, 0.0, training=True), x)
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))
    model = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.25), nn.ReLU(), nn.Dropout(0.5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    use_fast_dropout(model)
    assert [type(m) for m in model if isinstance(m, nn.Dropout)] == [FastDropout, FastDropout]
    assert model[1].p == 0.25 and model[3].p == 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    assert torch.equal(model(x), F.relu(model[0](x)))
