"""`afqmc train`: setup -> fit, evaluating on the dev file every epoch."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from afqmc import class_names
from afqmc.model import settings
from afqmc.commands.config import RESUME_MAY_DIFFER, TrainConfig, pretrained_lr, text_column_pair
from afqmc.model.encoders import family, has_fast_forward
from afqmc.data.batches import PairBatches, collate, encode, length_sorted_batches
from afqmc.model.bert import inference_model, uses_match_types
from afqmc.model.modeldir import from_source, save_model_dir
from afqmc.model.pretrain import mlm_warmup
from afqmc.commands.train_data import TrainData, read_training_pairs
from shared import distributed
from shared.epochs import Trainer, run_epochs
from shared.flops import training_flops_per_example
from shared.evaluation import evaluate, evaluate_regression
from shared.score_metrics import score_loss
from shared.rundir import RunDir, open_run_dir, setup_logging
from shared.embedding_grads import buffer_embedding_grads
from shared.precision import choose_precision
from shared.runtime import adamw, seed_everything, select_device, set_threads
from shared.errors import UserError
from shared.selection import with_tuned_threshold
from shared.config import field_defaults
from shared.training import class_weights, find_checkpoint, restore_or_start

log = logging.getLogger("pairtrain")


def optimizer_for(model: nn.Module, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]  # biases, LayerNorm
    return adamw([{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}], lr, weight_decay, device)


def main(cfg: TrainConfig) -> dict[str, Any]:
    device = select_device(distributed.setup(cfg.device))
    with open_run_dir(cfg.out, cfg.resume) as run:
        return train(cfg, run, device)


def train(cfg: TrainConfig, run: RunDir, device: torch.device) -> dict[str, Any]:
    setup_logging(run.log_file if distributed.is_main() else None, cfg.quiet or not distributed.is_main())
    if note := set_threads(cfg.threads, adapt=False):
        log.info(note)  # advice, not an error: stdout and train.log
    log.info(f"Using {device} device ({torch.get_num_threads()} CPU threads); "
             f"{distributed.summary(cfg.batch_size, cfg.accum_steps)}")
    cfg, pairs = read_training_pairs(cfg)
    seed_everything(cfg.seed)
    found = find_checkpoint(run, cfg.resume)
    extra = found[1].get("extra", {}) if found else {}
    if found and extra.get("labels", pairs.labels) != pairs.labels:
        raise UserError(f"--resume: the run was trained with labels {', '.join(extra['labels'])}, the data now "
                        f"gives {', '.join(pairs.labels)}; resume with the same data and --labels, or start a new "
                        "--out")
    texts = (s for p in pairs.records for s in (p.sentence1, p.sentence2))
    tokenizer, model = from_source(cfg.model, pairs.labels, texts, cfg.scratch_size, cfg.vocab_size,
                                   cfg.max_length, cfg.match_types, extra.get("tokenizer"))
    if cfg.lr is None:  # resolved once, from the model's width, and recorded as used
        cfg = dataclasses.replace(cfg, lr=pretrained_lr(int(model.config.hidden_size)))
    data = TrainData(cfg, pairs, tokenizer, uses_match_types(model.config))
    return fit(cfg, run, device, tokenizer, model, data, pairs.dev, found)


def fit(cfg: TrainConfig, run: RunDir, device: torch.device, tokenizer: Any, net: nn.Module,
        data: TrainData, dev_pairs: list, found: tuple[Path, dict[str, Any]] | None) -> dict[str, Any]:
    settings.record(net.config, cfg.max_length, text_column_pair(cfg.text_columns), cfg.label_column,
                    cfg.label_name_list, cfg.task)
    if distributed.world_size() == 1:  # DDP's reducer needs gradients through autograd (shared.embedding_grads)
        buffer_embedding_grads(net)
    model = distributed.wrap(net.to(device), device)
    dev_x = encode(tokenizer, dev_pairs, cfg.max_length, uses_match_types(net.config))
    dev_y = [p.label for p in dev_pairs]
    pad = tokenizer.pad_token_id
    steps_per_epoch = -(-data.batches_per_epoch // cfg.accum_steps)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = optimizer_for(model, cfg.lr, cfg.weight_decay, device)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    config = dataclasses.asdict(cfg)
    state = restore_or_start(found, model, optimizer, scheduler, config, RESUME_MAY_DIFFER,
                             defaults=field_defaults(TrainConfig))
    precision = choose_precision(device, cfg.precision, net, cfg.batch_size * data.typical_length(),
                                 resumed=found[1].get("extra", {}).get("precision") if found else None)
    autocast = precision.autocast
    if cfg.mlm_epochs and not has_fast_forward(net):
        raise UserError(f"--mlm-epochs: the masked-LM warm-up is for BERT encoders (--model scratch or a BERT "
                        f"checkpoint); --model {cfg.model} is {family(net.config)}")
    if cfg.mlm_epochs and state.global_step == 0:  # a resumed run already has the warmed-up encoder
        mlm_warmup(net, tokenizer, data.x, cfg.mlm_epochs, cfg.batch_size, cfg.lr, cfg.seed, device,
                   autocast, progress=not cfg.quiet)
    mine = distributed.eval_range(len(dev_x))  # each rank evaluates its slice; results are gathered
    dev_batches = PairBatches(dev_x, dev_y, length_sorted_batches(dev_x, cfg.eval_batch_size, mine), pad)
    names = class_names(data.labels, cfg.label_name_list)
    if cfg.tune_threshold and len(data.labels) != 2:
        raise UserError(f"--tune-threshold needs two labels; the data has {len(data.labels)}")
    log.info(f"{data.total} pairs, batch {cfg.batch_size} x accumulation {cfg.accum_steps}: "
             f"{steps_per_epoch} optimizer steps per epoch, {total_steps} in total, lr {cfg.lr:g}, "
             f"{precision.describe()}")

    def evaluate_dev(stop: Any) -> dict[str, Any]:
        if cfg.task == "regression":
            return evaluate_regression(inference_model(net, autocast, copy_weights=True), dev_batches, score_loss,
                                       device=device, progress=not cfg.quiet, gather=distributed.gather_cat,
                                       stop=stop)
        metrics = evaluate(inference_model(net, autocast, copy_weights=True), dev_batches, nn.CrossEntropyLoss(),
                           device=device, num_classes=len(data.labels), progress=not cfg.quiet,
                           gather=distributed.gather_cat, stop=stop, keep_scores=cfg.tune_threshold)
        if cfg.tune_threshold:  # the model dirs saved after this evaluation carry its threshold
            metrics = with_tuned_threshold(metrics, cfg.select_by)
            net.config.decision_threshold = metrics["threshold"]
        return metrics

    trainer = Trainer(
        run=run, model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=training_loss(cfg, data, device),
        config=config, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        batches=data.epoch, evaluate=evaluate_dev, save_model=lambda path: save_model_dir(path, net, tokenizer),
        eval_name="dev", class_names=names, title="AFQMC sentence-pair run", report_to=cfg.report_to,
        data_sizes={"training pairs": data.total, "dev pairs": len(dev_x)},
        train_options=dict(device=device, max_grad_norm=cfg.max_grad_norm or None, autocast_dtype=autocast,
                           log_interval=cfg.log_interval, dataset_size=data.total,
                           num_batches=data.batches_per_epoch),
        save_every_steps=cfg.save_every_steps, accum_steps=cfg.accum_steps, eval_every_steps=cfg.eval_every_steps,
        select_by=cfg.select_by, patience=cfg.patience, flops_per_example=flops_per_pair(net, data, dev_x, device),
        # The exact tokenizer goes into every checkpoint: a resumed run must encode as the run it continues.
        checkpoint_extra={"tokenizer": tokenizer.backend_tokenizer.to_str(), "labels": data.labels,
                          "precision": precision.name}, run_facts={"precision": precision.record()})
    return run_epochs(trainer, state, progress=not cfg.quiet)


def flops_per_pair(net: nn.Module, data: TrainData, dev_x: list, device: torch.device) -> float:
    """Training FLOPs per pair (:mod:`shared.flops`), counted unpadded on 16 pairs spread over the training
    set (the dev set when streaming: the training file is not in memory)."""
    features = dev_x if data.cfg.streaming else data.x
    picks = features[:: max(1, len(features) // 16)][:16]
    return training_flops_per_example(net, (collate([f], None, data.pad)[0] for f in picks), device)


def training_loss(cfg: TrainConfig, data: TrainData, device: torch.device) -> Any:
    """Cross-entropy, weighted by ``--class-weights`` (the dev loss stays unweighted, comparable across runs);
    a regression's mean squared error (:func:`shared.score_metrics.score_loss`)."""
    if cfg.task == "regression":
        return score_loss
    weights = class_weights(cfg.class_weights, data.label_counts, data.labels)
    if weights is None:
        return nn.CrossEntropyLoss()
    shown = ", ".join(f"{lab} {w:.4g}" for lab, w in zip(data.labels, weights))
    log.info(f"class weights in the training loss: {shown} ({cfg.class_weights})")
    return nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))


