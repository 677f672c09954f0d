"""Evaluation and prediction passes: classification metrics, a score model's correlations, probabilities
and scores, in input order.

Batches are those of :mod:`shared.loops` (``(inputs, targets)``; the model returns logits or an object with
``.logits``). One pass runs under one autocast region, and the host reads the results once at the end.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from shared import testhooks
from shared.loops import autocast_region, forward, progress_bar, to_device
from shared.metrics import classification_metrics
from shared.score_metrics import regression_metrics


class EvaluationStopped(Exception):
    """``stop()`` asked an evaluation to end before its last batch."""


@torch.no_grad()
def _collect(model: nn.Module, batches: Iterable[Any], device: torch.device,
             autocast_dtype: torch.dtype | None, desc: str, progress: bool,
             stop: Callable[[], Any] | None = None) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(fp32 logits, targets) per batch; logits stay on ``device``. Raises EvaluationStopped on ``stop()``."""
    model.eval()
    bar = progress_bar(len(batches) if hasattr(batches, "__len__") else None, desc, progress)
    out = []
    # One autocast region for the whole pass: autocast caches the low-precision copy of each weight
    # until the region ends, so the weights are cast once per pass instead of once per batch.
    with autocast_region(device, autocast_dtype):
        for batch in batches:
            testhooks.delay_eval_batch()
            if stop is not None and stop():
                bar.close()
                raise EvaluationStopped
            inputs, targets = batch if isinstance(batch, (tuple, list)) else (batch, None)
            logits = forward(model, to_device(inputs, device)).float()
            out.append((logits, to_device(targets, device) if targets is not None else None))
            bar.update(1)
    bar.close()
    return out


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Any, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device,
    num_classes: int,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    stop: Callable[[], Any] | None = None,
    threshold: float | None = None,
    keep_scores: bool = False,
) -> dict[str, Any]:
    """Loss (mean per example), accuracy, macro precision/recall/F1 and confusion matrix.

    ``gather`` (optional) concatenates per-example tensors across processes for distributed
    evaluation; every example must be evaluated by exactly one process. Binary tasks: with
    ``threshold`` class 1 is predicted where its probability is at least that (else argmax);
    ``keep_scores`` adds ``positive`` (P(class 1)) and ``targets`` arrays for threshold tuning.
    """
    losses, preds, golds = [], [], []
    for logits, targets in _collect(model, batches, device, autocast_dtype, "eval", progress, stop):
        losses.append(_per_example_loss(loss_fn, logits, targets))
        preds.append(logits.softmax(dim=-1)[:, 1] if (threshold is not None or keep_scores) else logits.argmax(dim=-1))
        golds.append(targets)
    if not golds and gather is None:
        raise ValueError("evaluate() got no batches")
    if not golds:  # this process's slice is empty (fewer examples than processes)
        losses, preds, golds = [torch.zeros(0, device=device)], [torch.zeros(0, dtype=torch.long, device=device)], \
            [torch.zeros(0, dtype=torch.long, device=device)]
    loss_t, pred_t, gold_t = (torch.cat(x) for x in (losses, preds, golds))
    if gather is not None:
        loss_t, pred_t, gold_t = gather(loss_t), gather(pred_t), gather(gold_t)
    y_pred, y_true = pred_t.cpu().numpy(), gold_t.cpu().numpy()  # the one host sync
    positive = None
    if threshold is not None or keep_scores:
        positive = y_pred.astype(np.float64)
        y_pred = (positive > 0.5 if threshold is None else positive >= threshold).astype(np.int64)  # > 0.5: argmax
    metrics = classification_metrics(y_true, y_pred, num_classes)
    metrics["loss"] = float(loss_t.double().mean().item())
    if keep_scores:
        metrics["positive"], metrics["targets"] = positive, y_true
    return metrics


def evaluate_regression(
    model: nn.Module,
    batches: Iterable[tuple[Any, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = True,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    stop: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Loss (mean per example), Pearson, Spearman and MSE of a one-output model's scores
    (:mod:`shared.score_metrics`); ``gather`` and ``stop`` as for :func:`evaluate`."""
    losses, preds, golds = [], [], []
    for out, targets in _collect(model, batches, device, autocast_dtype, "eval", progress, stop):
        losses.append(_per_example_loss(loss_fn, out, targets))
        preds.append(out.reshape(-1))
        golds.append(targets.float())
    if not golds and gather is None:
        raise ValueError("evaluate_regression() got no batches")
    if not golds:  # this process's slice is empty
        losses = preds = golds = [torch.zeros(0, device=device)]
    loss_t, pred_t, gold_t = (torch.cat(x) for x in (losses, preds, golds))
    if gather is not None:
        loss_t, pred_t, gold_t = gather(loss_t), gather(pred_t), gather(gold_t)
    metrics = regression_metrics(gold_t.cpu().numpy(), pred_t.cpu().numpy())
    metrics["loss"] = float(loss_t.double().mean().item())
    return metrics


def _per_example_loss(loss_fn: Callable, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Mean loss per batch weighted by batch size gives the exact per-example mean at the end.
    return loss_fn(logits, targets).detach().float().reshape(1).repeat(targets.shape[0])


@torch.no_grad()
def predict_proba(model: nn.Module, batches: Iterable[Any], *, device: torch.device,
                  autocast_dtype: torch.dtype | None = None, progress: bool = True) -> np.ndarray:
    """Softmax probabilities for every example, in input order, as an ``(N, C)`` array."""
    probs = [logits.softmax(dim=-1) for logits, _ in
             _collect(model, batches, device, autocast_dtype, "predict", progress)]
    if not probs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(probs).cpu().numpy()


@torch.no_grad()
def predict_scores(model: nn.Module, batches: Iterable[Any], *, device: torch.device,
                   autocast_dtype: torch.dtype | None = None, progress: bool = True) -> np.ndarray:
    """A one-output (regression) model's score for every example, in input order, as an ``(N,)`` array."""
    scores = [out.reshape(-1) for out, _ in _collect(model, batches, device, autocast_dtype, "predict", progress)]
    return torch.cat(scores).cpu().numpy() if scores else np.zeros(0, dtype=np.float32)
