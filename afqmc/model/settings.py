"""What inference needs to reproduce training, saved in the model directory's ``config.json`` and read back here.

A model is only scored as it was trained when the pairs are encoded the same way: the same truncation
(``max_length``: trained at 16 and scored at 128, a model saw inputs it never learnt from and lost ten
points without a word), the same exact-match token types, the same columns of the user's files and the
same decision threshold. Training records them with :func:`record`; ``eval``, ``predict``, ``serve`` and
:class:`afqmc.model.scorer.PairScorer` take them from :func:`read` as their defaults (an explicit flag wins).

They live in the Hugging Face config (``config.json``), so the directory stays an ordinary one: the key
``pairtrain_inference`` holds max length and columns; ``decision_threshold`` and ``match_token_types``
keep the names that older directories already use. Directories written before a setting existed read
back the value they were used with then (max length 128, columns detected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KEY = "pairtrain_inference"
DEFAULT_MAX_LENGTH = 128  # what eval/predict/serve used before the max length was saved


@dataclass(frozen=True)
class InferenceSettings:
    max_length: int = DEFAULT_MAX_LENGTH
    text_columns: tuple[str, str] | None = None  # --text-columns of training (None: detected)
    label_column: str | None = None  # --label-column of training (None: detected)
    match_types: bool = False  # token types mark tokens shared by both sentences (scratch models)
    threshold: float | None = None  # binary: P(second label) at which it is chosen (None: argmax)
    label_names: tuple[str, ...] | None = None  # train --label-names, shown for the labels (None: the labels)
    regression: bool = False  # a score model: one output, no labels to choose (config problem_type "regression")


def record(config: Any, max_length: int, text_columns: tuple[str, str] | None, label_column: str | None,
           label_names: tuple[str, ...] | None = None, task: str = "classification") -> None:
    """Store the training-time encoding, columns, label names and task on a model config (saved with every
    model directory). The task is Hugging Face's own ``problem_type`` (``regression`` or
    ``single_label_classification``), which ``AutoModelForSequenceClassification`` also reads."""
    config.problem_type = "regression" if task == "regression" else "single_label_classification"
    setattr(config, KEY, {"max_length": max_length, "text_columns": list(text_columns) if text_columns else None,
                          "label_column": label_column, "label_names": list(label_names) if label_names else None})


def read(config: Any) -> InferenceSettings:
    """The settings a model directory's config carries (older directories: what they were used with)."""
    saved = getattr(config, KEY, None) or {}
    columns = saved.get("text_columns")
    threshold = getattr(config, "decision_threshold", None) if int(config.num_labels) == 2 else None
    return InferenceSettings(max_length=int(saved.get("max_length") or DEFAULT_MAX_LENGTH),
                             text_columns=tuple(columns) if columns else None,  # type: ignore[arg-type]
                             label_column=saved.get("label_column"),
                             label_names=tuple(saved["label_names"]) if saved.get("label_names") else None,
                             match_types=bool(getattr(config, "match_token_types", False)),
                             threshold=None if threshold is None else float(threshold),
                             regression=getattr(config, "problem_type", None) == "regression")
