"""`afqmc eval` and `afqmc predict`: load a model directory, score or label pairs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from afqmc import class_names
from afqmc.data import Pair, PairBatches, length_sorted_batches, read_pairs
from afqmc.scorer import PairScorer
from shared.checkpoint import write_bytes
from shared.errors import UserError
from shared.loops import evaluate
from shared.metrics import report_text, single_class_warning
from shared.report import write_eval_report

log = logging.getLogger("pairtrain")


def run_eval(model_dir: str, file: str, batch_size: int, max_length: int, device_name: str,
             skip_bad: bool, precision: str = "auto", report_dir: str | None = None) -> dict[str, Any]:
    scorer = PairScorer.from_dir(model_dir, device=device_name, precision=precision, max_length=max_length,
                                 batch_size=batch_size)
    labels = scorer.labels
    pairs = read_pairs(file, labels, need_label=True, skip_bad=skip_bad)
    features = scorer.encode(pairs)
    batches = PairBatches(features, [p.label for p in pairs], length_sorted_batches(features, batch_size),
                          scorer.tokenizer.pad_token_id)
    metrics = evaluate(scorer.model, batches, nn.CrossEntropyLoss(), device=scorer.device, num_classes=len(labels))
    names = class_names(labels)
    log.info(report_text(metrics, names))
    if report_dir:
        write_eval_report(Path(report_dir), metrics, names, f"{model_dir} on {file}")
    log.info(f"loss: {metrics['loss']:.6f}")
    if (warning := single_class_warning(metrics, names)):
        log.warning(warning)
    return metrics


def run_predict_file(model_dir: str, file: str, output: str, batch_size: int, max_length: int,
                     device_name: str, skip_bad: bool, precision: str = "auto") -> None:
    """CLUE submission format: one ``{"id": int, "label": str}`` per input record, in order."""
    out = Path(output)
    if out.is_dir():
        raise UserError(f"--output {out}: is a directory, expected a file name")
    if not out.parent.is_dir():
        raise UserError(f"--output {out}: folder {out.parent} does not exist")
    scorer = PairScorer.from_dir(model_dir, device=device_name, precision=precision, max_length=max_length,
                                 batch_size=batch_size)
    labels = scorer.labels
    pairs = read_pairs(file, labels, need_label=False, skip_bad=skip_bad)
    started = time.perf_counter()
    probs = scorer.probabilities(pairs)
    seconds = time.perf_counter() - started
    log.info(f"predicted {len(pairs)} pairs in {seconds:.2f}s ({len(pairs) / max(seconds, 1e-9):.1f} pairs/s, "
             "tokenisation included)")
    pred = probs.argmax(1)
    lines = [json.dumps({"id": p.id if p.id is not None else p.index, "label": labels[k]}, ensure_ascii=False)
             for p, k in zip(pairs, pred)]
    write_bytes(out, ("\n".join(lines) + "\n").encode("utf-8"))  # atomic: never half-written
    counts = np.bincount(pred, minlength=len(labels))
    log.info(f"wrote {len(lines)} predictions to {out} ("
             + ", ".join(f"label {lab}: {c}" for lab, c in zip(labels, counts)) + ")")
    if len(pairs) > 1 and (counts > 0).sum() == 1:
        log.warning(f"WARNING: every pair was predicted as label {labels[int(counts.argmax())]}")
    labelled = [p for p in pairs if p.label is not None]
    if len(labelled) == len(pairs):
        acc = float(np.mean([k == p.label for p, k in zip(pairs, pred)]))
        log.info(f"the file is labelled: accuracy {100 * acc:.2f}%")


def run_predict_pair(model_dir: str, sentence1: str, sentence2: str, max_length: int,
                     device_name: str, precision: str = "auto") -> dict[str, Any]:
    if not sentence1.strip() or not sentence2.strip():
        raise UserError("--pair: both sentences must be non-empty")
    scorer = PairScorer.from_dir(model_dir, device=device_name, precision=precision, max_length=max_length)
    result = scorer.describe(scorer.probabilities([Pair(0, None, sentence1, sentence2, None)])[0])
    label = result["label"]
    name = class_names(scorer.labels)[scorer.labels.index(label)]
    shown = label if name == label else f"{label} ({name})"
    others = ", ".join(f"{lab}: {p:.4f}" for lab, p in result["probabilities"].items())
    log.info(f"label: {shown}  probability: {result['probability']:.4f}  ({others})")
    return result
