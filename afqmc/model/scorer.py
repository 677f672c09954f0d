"""Score sentence pairs with a saved model from Python, exactly as ``afqmc predict`` does.

``afqmc predict`` and ``afqmc eval`` use this class, so the encoding (tokenizer, truncation, a
scratch model's exact-match token types), the precision and the attention kernel are the same
whether a pair is scored from the CLI or from code. Calling ``tokenizer(a, b)`` by hand would
silently drop the match token types that scratch models are trained with.

    scorer = PairScorer.from_dir("runs/afqmc/best")
    scorer.predict([("花呗怎么还款", "花呗如何还钱")])
    # [{'label': '1', 'probability': 0.93, 'probabilities': {'0': 0.07, '1': 0.93}, 'threshold': None}]

A score (regression) model answers ``[{'score': 4.2}]`` instead, and :meth:`PairScorer.scores` gives them
as an array.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from afqmc.data.batches import Pair, PairBatches, encode, length_sorted_batches
from afqmc.model import onnx_backend, settings
from afqmc.model.bert import inference_model
from afqmc.model.modeldir import load_model_dir
from afqmc.data.charsets import lone_surrogate
from shared.errors import UserError
from shared.evaluation import predict_proba, predict_scores
from shared.precision import choose_precision
from shared.runtime import select_device


TOKENS_PER_PAIR = 32  # what the precision probe assumes a pair feeds the encoder (AFQMC pairs: ~30 tokens)


def on_device(model: nn.Module, device: torch.device, precision: str, batch_size: int) -> nn.Module:
    """``model`` ready for inference on ``device``: its attention kernel and weight dtype chosen
    (``auto``: :mod:`shared.precision` times a forward pass at ``batch_size`` pairs)."""
    chosen = choose_precision(device, precision, model, batch_size * TOKENS_PER_PAIR, backward=False)
    return inference_model(model.to(device), chosen.autocast, copy_weights=False)


class PairScorer:
    """A loaded pair model: label and probabilities for ``(sentence1, sentence2)`` pairs.

    ``precision`` ``auto`` runs bf16 weights where a timing says bf16 is faster (:mod:`shared.precision`),
    ``fp32``/``bf16`` force one; ``batch_size`` pairs are scored at a time, longest first.
    """

    def __init__(self, tokenizer: Any, model: nn.Module, labels: Sequence[str], *, device: str = "auto",
                 precision: str = "auto", max_length: int | None = None, batch_size: int = 64):
        """``model``: the torch pair model, or the ONNX Runtime one (:mod:`afqmc.model.onnx_backend`), which
        runs as exported (``device`` and ``precision`` do not apply to it)."""
        if (max_length is not None and max_length < 1) or batch_size < 1:
            raise UserError("max_length and batch_size must be at least 1")
        # What training used (afqmc.model.settings): truncation, token types, columns, the decision threshold.
        self.settings = settings.read(model.config)
        self.tokenizer, self.labels = tokenizer, list(labels)
        self.max_length = max_length if max_length is not None else self.settings.max_length
        self.batch_size = batch_size
        self.device = select_device(device)
        self.match_types = self.settings.match_types
        # Binary models trained with --tune-threshold label a pair with the second label when its
        # probability reaches this threshold (None: the most probable label).
        self.threshold: float | None = self.settings.threshold if len(self.labels) == 2 else None
        self.regression = self.settings.regression  # one output: a score, not label probabilities
        if isinstance(model, onnx_backend.OnnxPairModel):
            self.device, self.model, self.backend = torch.device("cpu"), model, model.path.name
        else:
            self.model, self.backend = on_device(model, self.device, precision, batch_size), "torch"

    @classmethod
    def from_dir(cls, model_dir: str | Path, backend: str = "torch", int8: bool = False, threads: int = 0,
                 **options: Any) -> PairScorer:
        """Load a model directory (``best/``, ``last/`` or one written by :func:`save_model_dir`);
        ``backend="onnx"`` runs its exported ONNX model (``int8``: the quantised one) with ONNX Runtime
        (``threads``: its intra-op threads, 0: its default)."""
        if backend not in ("torch", "onnx") or (int8 and backend != "onnx"):
            raise UserError(f"backend {backend!r}{' with int8' if int8 else ''}: use backend='torch', or "
                            "backend='onnx' (int8=True for the quantised model)")
        tokenizer, model, labels = load_model_dir(model_dir)
        if backend == "onnx":
            model = onnx_backend.load(Path(model_dir), model.config, int8, threads)
        return cls(tokenizer, model, labels, **options)

    def encode(self, pairs: Sequence[Pair]) -> list[dict[str, list[int]]]:
        """Token ids and token types per pair, as the model was trained on them."""
        return encode(self.tokenizer, pairs, self.max_length, self.match_types)

    def outputs(self, pairs: Sequence[tuple[str, str]] | Sequence[Pair]) -> np.ndarray:
        """``(N, number of labels)`` probabilities, or a score model's ``(N, 1)`` scores, in the order of ``pairs``."""
        records = [p if isinstance(p, Pair) else _pair(i, p) for i, p in enumerate(pairs)]
        if not records:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        features = self.encode(records)
        order = length_sorted_batches(features, self.batch_size)
        batches = PairBatches(features, None, order, self.tokenizer.pad_token_id)
        run = predict_scores if self.regression else predict_proba
        values = run(self.model, batches, device=self.device, progress=False).reshape(len(records), -1)
        out = np.empty_like(values)
        out[np.concatenate(order)] = values
        return out

    def probabilities(self, pairs: Sequence[tuple[str, str]] | Sequence[Pair]) -> np.ndarray:
        """``(N, number of labels)`` probabilities, in the order of ``pairs``."""
        if self.regression:
            raise UserError("a score (regression) model has no label probabilities: use scores() or predict()")
        return self.outputs(pairs)

    def scores(self, pairs: Sequence[tuple[str, str]] | Sequence[Pair]) -> np.ndarray:
        """A score model's ``(N,)`` scores, in the order of ``pairs``."""
        if not self.regression:
            raise UserError("a classification model has no scores: use probabilities() or predict()")
        return self.outputs(pairs).reshape(-1)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """One ``{"label", "probability", "probabilities": {label: p}}`` per pair, in order (a score
        model: ``{"score"}``)."""
        return [self.describe(row) for row in self.outputs(pairs)]

    __call__ = predict

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Label indices for ``(N, labels)`` probabilities: the saved threshold, else the argmax."""
        if self.threshold is None:
            return probs.argmax(-1)
        return (probs[..., 1] >= self.threshold).astype(np.int64)

    @property
    def decided_by(self) -> str:
        """How labels are chosen, in words: the saved threshold or the argmax."""
        if self.regression:
            return "the score the model outputs (a regression)"
        if self.threshold is None:
            return "argmax (the most probable label)"
        return f"the decision threshold {self.threshold:.4f} on P({self.labels[1]}) tuned in training"

    def describe(self, probs: np.ndarray) -> dict[str, Any]:
        """``threshold``: the one that decided the label (None: the argmax did); a score model's row: its score."""
        if self.regression:
            return {"score": float(probs[0])}
        k = int(self.decide(probs))
        return {"label": self.labels[k], "probability": float(probs[k]),
                "probabilities": {lab: float(p) for lab, p in zip(self.labels, probs)}, "threshold": self.threshold}


def _pair(index: int, pair: tuple[str, str]) -> Pair:
    if len(pair) != 2 or not all(isinstance(s, str) and s.strip() for s in pair):
        raise UserError(f"pair {index}: expected two non-empty strings, got {pair!r}")
    if bad := next(filter(None, map(lone_surrogate, pair)), None):
        raise UserError(f"pair {index}: {bad}")
    return Pair(index, None, pair[0], pair[1], None)
