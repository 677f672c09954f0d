"""Classification or regression: what the training labels are, decided once and said at start-up.

A label column of a few names or whole numbers (0/1, entailment/neutral/contradiction, 1-5 stars) is a
set of classes. A column of scores (STS-B's 0-5 similarity, 3.8, 4.25, ...) is a regression target:
one output, mean squared error, Pearson and Spearman, as ``run_glue.py`` treats STS-B and
``CrossEncoder(num_labels=1)`` does. ``--task auto`` calls it a regression when every training label
is a number and they are not a few whole numbers: a fraction anywhere, or more than
:data:`MAX_WHOLE_CLASSES` distinct values. STS-B-zh's scores are whole 0-5, six values: auto keeps
classes and the start-up line says ``--task regression`` turns them into scores.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from afqmc.data.batches import Pair
from shared.errors import UserError

MAX_WHOLE_CLASSES = 10


def _number(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def decide_task(asked: str, labels: Sequence[str]) -> tuple[str, str]:
    """(``classification`` or ``regression``, why, in words) for the training data's distinct labels."""
    values = [_number(lab) for lab in labels]
    numeric = all(v is not None for v in values)
    if asked != "auto":
        if asked == "regression" and not numeric:
            bad = next(lab for lab, v in zip(labels, values) if v is None)
            raise UserError(f"--task regression needs numeric labels; the training data has {bad!r}")
        return asked, f"--task {asked}"
    if numeric and (any(v != int(v) for v in values) or len(values) > MAX_WHOLE_CLASSES):
        return "regression", (f"auto: the {len(values)} distinct labels are numbers"
                              + (" with fractions" if any(v != int(v) for v in values) else "")
                              + "; --task classification treats them as classes")
    hint = "; --task regression treats them as scores" if numeric and len(values) > 2 else ""
    return "classification", f"auto: {len(values)} distinct labels{hint}"


def as_scores(pairs: Sequence[Pair], labels: Sequence[str]) -> list[Pair]:
    """``pairs`` with their label index replaced by the score it names (``labels[index]`` as a float)."""
    out = []
    for p in pairs:
        value = _number(labels[p.label]) if p.label is not None else None
        if p.label is not None and value is None:
            raise UserError(f"{p.where}: label {labels[p.label]!r} is not a number (the task is a regression)")
        out.append(dataclasses.replace(p, label=value))
    return out
