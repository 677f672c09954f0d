"""AFQMC-style sentence-pair similarity: pair data, a BERT encoder + custom head, the `afqmc` CLI.

The Python API (imported on first use, so that ``afqmc --help`` stays fast)::

    from afqmc import PairScorer, load_model_dir, save_model_dir
"""

from __future__ import annotations

from typing import Any, Sequence

_LAZY = {"PairScorer": "afqmc.model.scorer", "load_model_dir": "afqmc.model.modeldir",
         "save_model_dir": "afqmc.model.modeldir", "BertForPairwiseCLS": "afqmc.model.bert"}
__all__ = ["class_names", *_LAZY]


def class_names(labels: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """Names to show for the labels in tables, plots and ``metrics.json``: ``train --label-names`` where it
    was given (saved with the model), else the labels as the data writes them. No label set gets names
    it did not ask for: "0"/"1" are not "different"/"same meaning" in a paraphrase or an NLI set."""
    return list(names) if names else list(labels)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afqmc' has no attribute {name!r}")
