"""Achieved FLOP/s of a training run: how close it runs to the hardware's peak.

The estimate per training example is 3x the floating-point operations of one forward pass, counted
by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` on sample inputs: matrix products,
convolutions and attention, the work that model-FLOP-utilisation figures count (elementwise work,
norms and the optimizer are left out, as there). A backward pass costs about two forward passes of that
work (the gradients for the inputs and for the weights), hence 3x. The count is of what this
implementation executes: a forward that skips work (afqmc's [CLS]-only top layer) counts less.
Multiply by samples/s for FLOP/s and compare with the device's peak (e.g. fp32 FMA units x lanes x 2 x clock).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from shared.loops import forward, to_device


def training_flops_per_example(model: nn.Module, samples: Iterable[Any], device: torch.device) -> float:
    """Mean training FLOPs per example over ``samples`` (model inputs, each a batch of one example).

    Runs in eval mode under ``no_grad``: no dropout draws and no gradients, so the training run's random
    stream and state are untouched.
    """
    was_training, total, count = model.training, 0, 0
    # Parameters are frozen while counting: the counter's module tracker hooks the gradients of module
    # inputs, and fails on a parameter passed as one (DeBERTa-v2 hands its relative-position embedding on).
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    try:
        for p in trainable:
            p.requires_grad_(False)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            for inputs in samples:
                forward(model, to_device(inputs, device))
                count += 1
        total = counter.get_total_flops()
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.train(was_training)
    return 3.0 * total / max(count, 1)


def format_flops(per_second: float) -> str:
    """``12.3 GFLOP/s`` (or M/T as fits)."""
    for unit, scale in (("TFLOP/s", 1e12), ("GFLOP/s", 1e9)):
        if per_second >= scale:
            return f"{per_second / scale:.1f} {unit}"
    return f"{per_second / 1e6:.1f} MFLOP/s"
