"""AFQMC-style sentence-pair similarity: pair data, a BERT encoder + custom head, the `afqmc` CLI.

The Python API (imported on first use, so that ``afqmc --help`` stays fast)::

    from afqmc import PairScorer, load_model_dir, save_model_dir
"""

from __future__ import annotations

from typing import Any, Sequence

# Display names of the default binary labels "0"/"1".
LABEL_NAMES = {"0": "different", "1": "same meaning"}

_LAZY = {"PairScorer": "afqmc.model.scorer", "load_model_dir": "afqmc.model.modeldir",
         "save_model_dir": "afqmc.model.modeldir", "BertForPairwiseCLS": "afqmc.model.bert"}
__all__ = ["LABEL_NAMES", "class_names", *_LAZY]


def class_names(labels: Sequence[str]) -> list[str]:
    """Names to show for the labels: the binary "0"/"1" get words, any other label is its own name."""
    return [LABEL_NAMES.get(lab, lab) if tuple(labels) == ("0", "1") else lab for lab in labels]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'afqmc' has no attribute {name!r}")
