"""`afqmc eval` and `afqmc predict`: load a model directory, score or label pairs."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from afqmc.data import Pair, PairBatches, encode, length_sorted_batches, read_pairs
from afqmc.model import inference_model, use_fastest_attention, uses_match_types
from afqmc.modeldir import load_model_dir
from afqmc.train import class_names
from shared.checkpoint import write_bytes
from shared.errors import UserError
from shared.loops import evaluate, predict_proba
from shared.metrics import report_text, single_class_warning
from shared.report import write_eval_report
from shared.runtime import autocast_dtype, select_device

log = logging.getLogger("pairtrain")


def _on_device(model: nn.Module, device: torch.device, precision: str) -> nn.Module:
    """``model`` ready for inference on ``device``: its attention kernel and weight dtype chosen."""
    use_fastest_attention(model, device)
    return inference_model(model.to(device), autocast_dtype(device, precision), copy_weights=False)


def _probabilities(model: nn.Module, tokenizer: Any, pairs: list[Pair], max_length: int,
                   batch_size: int, device: torch.device, precision: str) -> np.ndarray:
    """(N, C) probabilities in input order (batches are length-sorted for speed)."""
    features = encode(tokenizer, pairs, max_length, uses_match_types(model.config))
    order = length_sorted_batches(features, batch_size)
    model = _on_device(model, device, precision)
    probs = predict_proba(model, PairBatches(features, None, order, tokenizer.pad_token_id), device=device)
    out = np.empty_like(probs)
    out[np.concatenate(order)] = probs
    return out


def run_eval(model_dir: str, file: str, batch_size: int, max_length: int, device_name: str,
             skip_bad: bool, precision: str = "auto", report_dir: str | None = None) -> dict[str, Any]:
    tokenizer, model, labels = load_model_dir(model_dir)
    pairs = read_pairs(file, labels, need_label=True, skip_bad=skip_bad)
    device = select_device(device_name)
    features = encode(tokenizer, pairs, max_length, uses_match_types(model.config))
    batches = PairBatches(features, [p.label for p in pairs], length_sorted_batches(features, batch_size),
                          tokenizer.pad_token_id)
    model = _on_device(model, device, precision)
    metrics = evaluate(model, batches, nn.CrossEntropyLoss(), device=device, num_classes=len(labels))
    names = class_names(tuple(labels))
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
    tokenizer, model, labels = load_model_dir(model_dir)
    pairs = read_pairs(file, labels, need_label=False, skip_bad=skip_bad)
    started = time.perf_counter()
    probs = _probabilities(model, tokenizer, pairs, max_length, batch_size, select_device(device_name),
                           precision)
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
    tokenizer, model, labels = load_model_dir(model_dir)
    probs = _probabilities(model, tokenizer, [Pair(0, None, sentence1, sentence2, None)], max_length, 1,
                           select_device(device_name), precision)[0]
    k = int(probs.argmax())
    name = class_names(tuple(labels))[k]
    log.info(f"label: {labels[k]} ({name})  probability: {probs[k]:.4f}")
    return {"label": labels[k], "probability": float(probs[k])}
