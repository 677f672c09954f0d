"""Metrics of a score (regression) task: Pearson and Spearman correlation, mean squared error.

STS-B's own metrics (GLUE reports Pearson and Spearman; ``run_glue.py`` and sentence-transformers'
``CrossEncoder(num_labels=1)`` evaluators both use them). Spearman is Pearson on ranks, ties given their
average rank (as ``scipy.stats.spearmanr`` ranks them; a test compares the two), computed with numpy so
that evaluation does not import scipy. A constant prediction has no correlation: 0.0, not NaN, so that
selection and JSON stay well-defined (a model predicting one score for everything has learnt nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# What an evaluation of each kind reports, headline first: the names of its scalar metrics.
CLASSIFICATION = ("accuracy", "macro_f1")
REGRESSION = ("pearson", "spearman", "mse")


def score_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of a one-output model (``(N, 1)`` or ``(N,)``) against ``(N,)`` scores, in fp32:
    the loss of Hugging Face's ``problem_type="regression"`` and of ``CrossEncoder(num_labels=1)``
    trained on scores (its default there is BCE on scores scaled to 0..1; MSE on the data's own scale
    keeps predictions in the units the user gave)."""
    return torch.nn.functional.mse_loss(output.reshape(-1).float(), target.reshape(-1).float())


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return {"n": int(len(y_true)), "pearson": pearson(y_true, y_pred),
            "spearman": pearson(average_ranks(y_true), average_ranks(y_pred)),
            "mse": float(np.mean((y_true - y_pred) ** 2)) if len(y_true) else 0.0,
            "single_score_prediction": bool(len(y_pred) > 1 and np.ptp(y_pred) == 0)}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0:
        return 0.0
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # mean of ranks start+1..end
    return ranks


def metric_names(metrics: dict[str, Any]) -> tuple[str, ...]:
    """The scalar metrics an evaluation reports (beside its loss): a classification's or a regression's."""
    return REGRESSION if "pearson" in metrics else CLASSIFICATION


def headline(record: dict[str, Any], prefix: str, select_by: str = "") -> str:
    """``dev accuracy 81.20%`` / ``dev Pearson 0.8123``, or the ``select_by`` metric with the headline beside it."""
    regression = f"{prefix}_pearson" in record
    main = "pearson" if regression else "accuracy"
    text = metric_text(record, prefix, main)
    if select_by and select_by not in (main, "last"):
        return f"{metric_text(record, prefix, select_by)} ({text.removeprefix(prefix + ' ')})"
    return text


_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "loss": "loss", "pearson": "Pearson",
          "spearman": "Spearman", "mse": "MSE"}


def metric_text(record: dict[str, Any], prefix: str, metric: str) -> str:
    """``dev macro-F1 0.8123`` (accuracy as a percentage) from a history record."""
    value = record[f"{prefix}_{metric}"]
    return f"{prefix} {_NAMES[metric]} " + (f"{100 * value:.2f}%" if metric == "accuracy" else f"{value:.4f}")
