"""`afqmc eval` and `afqmc predict`: load a model directory, score or label pairs."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from afqmc import class_names
from afqmc.data.batches import Pair, PairBatches, length_sorted_batches
from afqmc.commands.config import EvalConfig, InferConfig, PredictConfig
from afqmc.data.sources import read_labelled, read_pairs
from afqmc.data.task import as_scores
from afqmc.model.scorer import PairScorer
from shared.errors import UserError
from shared.atomic import write_json
from shared.evaluation import evaluate, evaluate_regression
from shared.metrics import report_text, single_class_warning
from shared.record_files import record_format, write_records
from shared.report import write_eval_report
from shared.score_metrics import score_loss
from shared.selection import at_threshold

log = logging.getLogger("pairtrain")


def scorer_for(cfg: InferConfig) -> PairScorer:
    # ONNX Runtime gets the thread count torch was given (shared.runtime: fewer where cores are busy).
    return PairScorer.from_dir(cfg.model_dir, backend=cfg.backend, int8=cfg.int8,
                               threads=cfg.threads or torch.get_num_threads(),
                               device=cfg.device, precision=cfg.precision, max_length=cfg.max_length,
                               batch_size=cfg.batch_size)


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    scorer = scorer_for(cfg)
    if scorer.regression:
        return run_eval_scores(cfg, scorer)
    labels = scorer.labels
    pairs = read_pairs(cfg.pair_file(cfg.file, scorer.settings, True), labels, need_label=True,
                       skip_bad=cfg.skip_bad_lines)
    features = scorer.encode(pairs)
    batches = PairBatches(features, [p.label for p in pairs], length_sorted_batches(features, cfg.batch_size),
                          scorer.tokenizer.pad_token_id)
    metrics = evaluate(scorer.model, batches, nn.CrossEntropyLoss(), device=scorer.device, num_classes=len(labels),
                       keep_scores=scorer.threshold is not None)
    if scorer.threshold is not None:
        metrics = at_threshold(metrics, scorer.threshold)
    names = class_names(labels, scorer.settings.label_names)
    if scorer.threshold is not None:  # the headline with the argmax figure beside it: is the threshold worth it?
        log.info(f"accuracy {100 * metrics['accuracy']:.2f}% at decision threshold {scorer.threshold:.4f} "
                 f"(tuned on dev in training; argmax: {100 * metrics['argmax_accuracy']:.2f}%)")
    log.info(report_text(metrics, names))
    if cfg.report:
        write_eval_report(Path(cfg.report), metrics, names, f"{cfg.model_dir} on {cfg.file}")
    log.info(f"loss: {metrics['loss']:.6f}")
    if (warning := single_class_warning(metrics, names)):
        log.warning(warning)
    return metrics


def run_eval_scores(cfg: EvalConfig, scorer: PairScorer) -> dict[str, Any]:
    """A score model on a file of scored pairs: Pearson, Spearman, MSE (and, with --report, metrics.json)."""
    pairs, found = read_labelled(cfg.pair_file(cfg.file, scorer.settings, True), None, need_label=True,
                                 skip_bad=cfg.skip_bad_lines)
    pairs = as_scores(pairs, found)
    features = scorer.encode(pairs)
    batches = PairBatches(features, [p.label for p in pairs], length_sorted_batches(features, cfg.batch_size),
                          scorer.tokenizer.pad_token_id)
    metrics = evaluate_regression(scorer.model, batches, score_loss, device=scorer.device)
    log.info(f"Pearson: {metrics['pearson']:.4f}  Spearman: {metrics['spearman']:.4f}  MSE: {metrics['mse']:.4f}  "
             f"(n={metrics['n']})")
    if cfg.report:
        Path(cfg.report).mkdir(parents=True, exist_ok=True)
        write_json(Path(cfg.report) / "metrics.json", metrics)
        log.info(f"wrote {Path(cfg.report) / 'metrics.json'}")
    if (warning := single_class_warning(metrics, [])):
        log.warning(warning)
    return metrics


def run_predict_file(cfg: PredictConfig) -> None:
    """One record per input pair, in order, ``id`` being the file's id column, else the record's 0-based
    position. ``--output`` ``.json``: CLUE's submission format, ``{"id", "label"}`` lines; ``.jsonl``:
    those plus ``probability`` (of the label given) and ``probabilities`` (every label's); ``.csv`` /
    ``.tsv``: the same as columns (``probabilities.<label>``)."""
    kind = record_format(cfg.output)
    clue = Path(cfg.output).suffix.lower() == ".json"
    scorer = scorer_for(cfg)
    labels = scorer.labels
    pairs = read_pairs(cfg.pair_file(cfg.file, scorer.settings, False), labels, need_label=False,
                       skip_bad=cfg.skip_bad_lines)
    started = time.perf_counter()
    probs = scorer.outputs(pairs)
    seconds = time.perf_counter() - started
    log.info(f"predicted {len(pairs)} pairs in {seconds:.2f}s ({len(pairs) / max(seconds, 1e-9):.1f} pairs/s, "
             f"tokenisation included); labels decided by {scorer.decided_by}")
    if scorer.regression:
        write_records(cfg.output, [{"id": p.id if p.id is not None else p.index, "score": float(row[0])}
                                   for p, row in zip(pairs, probs)], kind)
        log.info(f"wrote {len(pairs)} scores to {cfg.output} (id, score)")
        return
    pred = scorer.decide(probs)
    records = [{"id": p.id if p.id is not None else p.index, "label": labels[k]}
               | ({} if clue else {"probability": float(row[k]),
                                   "probabilities": {lab: float(x) for lab, x in zip(labels, row)}})
               for p, k, row in zip(pairs, pred, probs)]
    write_records(cfg.output, records, kind)  # atomic: never half-written
    counts = np.bincount(pred, minlength=len(labels))
    log.info(f"wrote {len(records)} predictions to {cfg.output} ("
             + ("CLUE format: id, label; .jsonl/.csv/.tsv add the probabilities; " if clue else "")
             + ", ".join(f"label {lab}: {c}" for lab, c in zip(labels, counts)) + ")")
    if len(pairs) > 1 and (counts > 0).sum() == 1:
        log.warning(f"WARNING: every pair was predicted as label {labels[int(counts.argmax())]}")
    labelled = [p for p in pairs if p.label is not None]
    if len(labelled) == len(pairs):
        acc = float(np.mean([k == p.label for p, k in zip(pairs, pred)]))
        log.info(f"the file is labelled: accuracy {100 * acc:.2f}%")


def run_predict_pair(cfg: PredictConfig) -> dict[str, Any]:
    sentence1, sentence2 = cfg.pair
    if not sentence1.strip() or not sentence2.strip():
        raise UserError("--pair: both sentences must be non-empty")
    scorer = scorer_for(cfg)
    result = scorer.describe(scorer.outputs([Pair(0, None, sentence1, sentence2, None)])[0])
    if scorer.regression:
        log.info(f"score: {result['score']:.4f}  (a regression: the similarity on the training data's scale)")
        return result
    label = result["label"]
    name = class_names(scorer.labels, scorer.settings.label_names)[scorer.labels.index(label)]
    shown = label if name == label else f"{label} ({name})"
    others = ", ".join(f"{lab}: {p:.4f}" for lab, p in result["probabilities"].items())
    log.info(f"label: {shown}  probability: {result['probability']:.4f}  ({others}; decided by {scorer.decided_by})")
    return result
