"""`fashion train`: setup -> fit, with per-epoch evaluation, best/last models and resume."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from fashion import CLASSES
from fashion.config import PREDATING_DEFAULTS, RESUME_MAY_DIFFER, TrainConfig
from fashion.data import (FashionIterable, TensorBatches, chunk, epoch_flips, epoch_order, load_split, to_tensor,
                          validation_split)
from fashion.infer import load_model, save_model_dir
from fashion.model import build_model
from shared import distributed
from shared.flops import training_flops_per_example
from shared.epochs import Trainer, run_epochs
from shared.errors import UserError
from shared.evaluation import evaluate
from shared.metrics import format_test_line
from shared.atomic import write_json
from shared.rundir import RunDir, log_result, open_run_dir, setup_logging
from shared.precision import choose_precision
from shared.runtime import adamw, seed_everything, select_device, set_threads
from shared.sharding import batches_per_rank, worker_init_fn
from shared.training import find_checkpoint, restore_or_start

log = logging.getLogger("pairtrain")


def _iterable_batches(cfg: TrainConfig, dataset: FashionIterable, epoch: int) -> DataLoader:
    dataset.set_epoch(epoch)
    if cfg.num_workers == 0:  # no worker processes: shard for this rank here
        dataset = dataset.narrowed_for_this_process()
    return DataLoader(dataset, batch_size=None, num_workers=cfg.num_workers,
                      worker_init_fn=worker_init_fn,
                      generator=torch.Generator().manual_seed(cfg.seed + epoch))


def _tensor_plan(cfg: TrainConfig, n: int, epoch: int) -> list[list[int]]:
    """This rank's index batches: the epoch's order cut into global batches of
    batch_size x processes, each split across the processes (exactly once, equal step counts)."""
    order = epoch_order(n, cfg.seed, epoch, cfg.shuffle).tolist()
    step = cfg.batch_size * distributed.world_size()
    plan = distributed.split_batches([order[i:i + step] for i in range(0, n, step)])
    distributed.record_plan(plan, epoch)
    return plan


def _batches_per_epoch(cfg: TrainConfig, n: int) -> int:
    if cfg.loader == "tensor":
        return len(_tensor_plan(cfg, n, 0))
    return batches_per_rank(n, cfg.batch_size, cfg.num_workers)


def train_batches(cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, epoch: int, skip: int,
                  iterable: FashionIterable | None) -> Iterable[Any]:
    """This epoch's batches, positioned after ``skip`` already-trained batches (resume)."""
    if iterable is not None:
        return itertools.islice(_iterable_batches(cfg, iterable, epoch), skip, None)
    flips = epoch_flips(len(x), cfg.seed, epoch, cfg.hflip)
    return TensorBatches(x, y, _tensor_plan(cfg, len(x), epoch), skip, flips)


def main(cfg: TrainConfig) -> dict[str, Any]:
    device = select_device(distributed.setup(cfg.device))
    with open_run_dir(cfg.out, cfg.resume) as run:
        return train(cfg, run, device)


def train(cfg: TrainConfig, run: RunDir, device: torch.device) -> dict[str, Any]:
    setup_logging(run.log_file if distributed.is_main() else None, cfg.quiet or not distributed.is_main())
    if note := set_threads(cfg.threads, adapt=False):
        log.info(note)  # advice, not an error: stdout and train.log
    log.info(f"Using {device} device ({torch.get_num_threads()} CPU threads); "
             f"{distributed.summary(cfg.batch_size)}")
    train_images, train_labels = load_split(cfg.data_dir, "train", cfg.download)
    test_images, test_labels = load_split(cfg.data_dir, "test", cfg.download)
    x, y = to_tensor(train_images, cfg.normalize), torch.from_numpy(train_labels)
    keep, held = validation_split(len(x), cfg.val_size, cfg.seed)
    val = (x[held], y[held]) if len(held) else None
    x, y = x[keep], y[keep]
    test_x, test_y = to_tensor(test_images, cfg.normalize), torch.from_numpy(test_labels)
    log.info(f"data: {len(x)} training, {len(held)} validation (held out of the training set, --val-size "
             f"{cfg.val_size:g}) and {len(test_x)} test images from {cfg.data_dir}")
    if val is None:
        log.info("no validation split (--val-size 0): best/ is the last model; the test set is only reported")
    return fit(cfg, run, device, x, y, val, (test_x, test_y))


def _eval_batches(x: torch.Tensor, y: torch.Tensor) -> TensorBatches:
    mine = distributed.eval_range(len(x))  # each rank evaluates its slice; results are gathered
    return TensorBatches(x, y, chunk(torch.tensor(mine), 1000))


def fit(cfg: TrainConfig, run: RunDir, device: torch.device, x: torch.Tensor, y: torch.Tensor,
        val: tuple[torch.Tensor, torch.Tensor] | None, test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """Train on (x, y), select best/ on ``val`` (None: best/ is the last model), then report the test
    accuracy of best/ once."""
    seed_everything(cfg.seed)
    net = build_model(cfg.arch, cfg.dropout).to(device)
    model = distributed.wrap(net, device)
    x, y = x.to(device), y.to(device)
    optimizer = adamw(model.parameters(), cfg.lr, cfg.weight_decay, device)
    steps_per_epoch = _batches_per_epoch(cfg, len(x))
    scheduler = None
    if cfg.schedule == "onecycle" and cfg.epochs * steps_per_epoch < 8:
        log.info("fewer than 8 optimizer steps in total: using a constant learning rate instead of one-cycle")
    elif cfg.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.25)
    config = dataclasses.asdict(cfg)
    found = find_checkpoint(run, cfg.resume)
    state = restore_or_start(found, model, optimizer, scheduler, config, RESUME_MAY_DIFFER, defaults=PREDATING_DEFAULTS)
    iterable = None
    if cfg.loader == "iterable":
        shards = distributed.world_size() * max(cfg.num_workers, 1)
        if distributed.world_size() > 1 and len(x) < shards:
            raise UserError(f"{len(x)} training images cannot feed {shards} processes x workers")
        iterable = FashionIterable(x.cpu(), y.cpu(), cfg.batch_size, cfg.seed, cfg.shuffle, cfg.hflip)
    selecting = _eval_batches(*(val or test))
    train_loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    loss_fn = nn.CrossEntropyLoss()  # reported test loss: plain cross-entropy, comparable to the tutorial's
    precision = choose_precision(device, cfg.precision, net, cfg.batch_size,
                                 resumed=found[1].get("extra", {}).get("precision") if found else None)
    log.info(f"precision: {precision.describe()}")
    autocast = precision.autocast
    total_steps = min(cfg.epochs * steps_per_epoch, cfg.max_steps or cfg.epochs * steps_per_epoch)

    def evaluate_on(batches: TensorBatches, model: nn.Module) -> Any:
        return lambda stop: evaluate(model, batches, loss_fn, device=device, num_classes=len(CLASSES),
                                     progress=not cfg.quiet, autocast_dtype=autocast, gather=distributed.gather_cat,
                                     stop=stop)

    def save_model(path: Path) -> None:
        save_model_dir(path, net, cfg.arch, cfg.dropout, cfg.normalize, str(Path(cfg.data_dir).resolve()))

    trainer = Trainer(
        run=run, model=model, optimizer=optimizer, scheduler=scheduler, loss_fn=train_loss, config=config,
        epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        batches=lambda epoch, skip: train_batches(cfg, x, y, epoch, skip, iterable),
        evaluate=evaluate_on(selecting, net), save_model=save_model, eval_name="val" if val else "test",
        class_names=list(CLASSES), title="Fashion-MNIST run",
        data_sizes={"training images": len(x), "validation images": len(val[0]) if val else 0,
                    "test images": len(test[0])},
        train_options=dict(device=device, log_interval=cfg.log_interval, dataset_size=len(x),
                           num_batches=steps_per_epoch, autocast_dtype=autocast),
        save_every_steps=cfg.save_every_steps, eval_every_steps=cfg.eval_every_steps,
        select_by=cfg.select_by if val else "last", patience=cfg.patience if val else 0,
        epoch_header="Epoch {epoch}\n-------------------------------", report_to=cfg.report_to,
        eval_line=lambda m: format_test_line(m, "Validation" if val else "Test"),
        flops_per_example=training_flops_per_example(net, [x[:1]], device),
        checkpoint_extra={"precision": precision.name}, run_facts={"precision": precision.record()})
    metrics = run_epochs(trainer, state, progress=not cfg.quiet)
    if val is None or not run.best.is_dir():
        return metrics
    selected, _ = load_model(run.best)
    tested = evaluate_on(_eval_batches(*test), selected.to(device))(None)
    log.info(format_test_line(tested))
    log_result(f"test accuracy of best/ (selected on validation): {100 * tested['accuracy']:.2f}%, "
               f"macro-F1 {tested['macro_f1']:.4f}, loss {tested['loss']:.4f}")
    if distributed.is_main():
        record_test_result(run, tested)
    return metrics


def record_test_result(run: RunDir, tested: dict[str, Any]) -> None:
    """The selected model's test figures, added to metrics.json (its val_* keys are the selection's)."""
    summary = json.loads(run.metrics.read_text(encoding="utf-8"))
    summary.update(test_accuracy=tested["accuracy"], test_macro_f1=tested["macro_f1"], test_loss=tested["loss"],
                   test_confusion_matrix=tested["confusion_matrix"], test_model="best/")
    write_json(run.metrics, summary)
