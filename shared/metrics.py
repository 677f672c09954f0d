"""Classification metrics and the tutorial's familiar console lines.

The metrics are computed from the confusion matrix with numpy, as scikit-learn's
``precision_recall_fscore_support(..., zero_division=0)`` defines them (a test compares the two):
importing ``sklearn.metrics`` took ~1.8 s of every ``train``/``eval``/``predict`` process's start-up.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class scores and the confusion matrix."""
    n = int(len(y_true))
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp, support, predicted_count = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    p, r = _ratio(tp, predicted_count), _ratio(tp, support)
    f = _ratio(2 * tp, support + predicted_count)  # = 2pr / (p + r), and 0 where a class is never seen
    predicted = np.unique(y_pred)
    return {
        "n": n,
        "accuracy": float((y_true == y_pred).mean()) if n else 0.0,
        "macro_precision": float(p.mean()),
        "macro_recall": float(r.mean()),
        "macro_f1": float(f.mean()),
        "per_class": {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(),
                      "support": support.tolist()},
        "confusion_matrix": cm.tolist(),
        # A model answering one class for everything can still score the majority rate.
        "single_class_prediction": bool(n > 1 and len(predicted) == 1),
    }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true row, predicted column) for class indices ``0..num_classes-1``."""
    pairs = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` per class, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


def format_test_line(metrics: dict[str, Any], split: str = "Test") -> str:
    """The tutorial's evaluation line: ``Test Error: \\n Accuracy: 83.7%, Avg loss: 0.441249 \\n``
    (``split`` names the evaluated set, e.g. ``Validation``)."""
    return f"{split} Error: \n Accuracy: {100 * metrics['accuracy']:>0.1f}%, Avg loss: {metrics['loss']:>8f} \n"


def single_class_warning(metrics: dict[str, Any], class_names: Sequence[str]) -> str | None:
    """A loud warning when every prediction is the same class (accuracy is then misleading), or, for a
    score task, the same score (no correlation to speak of)."""
    if metrics.get("single_score_prediction"):
        return (f"WARNING: the model predicts one score for all {metrics['n']} examples; it has not learnt to "
                "rank the pairs (Pearson and Spearman are 0)")
    if not metrics.get("single_class_prediction"):
        return None
    cm = np.asarray(metrics["confusion_matrix"])
    cls = int(cm.sum(axis=0).argmax())
    return (f"WARNING: the model predicts '{class_names[cls]}' for all {metrics['n']} examples; "
            f"accuracy {100 * metrics['accuracy']:.1f}% is just that class's share "
            f"(macro-F1 {metrics['macro_f1']:.3f}). The model has not learnt to separate the classes.")


def report_text(metrics: dict[str, Any], class_names: Sequence[str]) -> str:
    """Human-readable per-class table and confusion matrix with class names."""
    width = max(12, *(len(c) for c in class_names)) + 1
    pc = metrics["per_class"]
    lines = [f"accuracy: {100 * metrics['accuracy']:.2f}%  macro-F1: {metrics['macro_f1']:.4f}  "
             f"(n={metrics['n']})", "",
             f"{'':<{width}}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}"]
    for i, name in enumerate(class_names):
        lines.append(f"{name:<{width}}{pc['precision'][i]:>10.4f}{pc['recall'][i]:>10.4f}{pc['f1'][i]:>10.4f}"
                     f"{pc['support'][i]:>10d}")
    lines.append(f"{'macro avg':<{width}}{metrics['macro_precision']:>10.4f}{metrics['macro_recall']:>10.4f}"
                 f"{metrics['macro_f1']:>10.4f}{metrics['n']:>10d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * width + "".join(f"{c[:width - 1]:>{width}}" for c in class_names)]
    for name, row in zip(class_names, metrics["confusion_matrix"]):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)
