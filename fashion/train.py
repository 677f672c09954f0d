"""`fashion train`: setup -> fit, with per-epoch evaluation, best/last models and resume."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader

from fashion import CLASSES
from fashion.config import RESUME_MAY_DIFFER, TrainConfig
from fashion.data import FashionIterable, TensorBatches, chunk, epoch_order, load_split, to_tensor
from fashion.infer import save_model_dir
from fashion.model import build_model
from shared import distributed
from shared.checkpoint import write_json
from shared.errors import UserError
from shared.loops import TrainState, evaluate, train_one_epoch
from shared.metrics import format_test_line, single_class_warning
from shared.rundir import RunDir, prepare_run_dir, setup_logging
from shared.runtime import adamw, autocast_dtype, seed_everything, select_device
from shared.sharding import batches_per_rank, worker_init_fn
from shared.report import write_run_report
from shared.training import epoch_record, epoch_summary, finish_epoch, resume_or_start, save_checkpoint

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
    return TensorBatches(x, y, _tensor_plan(cfg, len(x), epoch), skip)


def main(cfg: TrainConfig) -> dict[str, Any]:
    device = select_device(distributed.setup(cfg.device))
    with distributed.main_process_first():
        run = prepare_run_dir(cfg.out, cfg.resume) if distributed.is_main() else RunDir(Path(cfg.out))
    setup_logging(run.log_file if distributed.is_main() else None, cfg.quiet or not distributed.is_main())
    log.info(f"Using {device} device; {distributed.summary(cfg.batch_size)}")
    train_images, train_labels = load_split(cfg.data_dir, "train", cfg.download)
    test_images, test_labels = load_split(cfg.data_dir, "test", cfg.download)
    x, y = to_tensor(train_images, cfg.normalize), torch.from_numpy(train_labels)
    test_x, test_y = to_tensor(test_images, cfg.normalize), torch.from_numpy(test_labels)
    log.info(f"data: {len(x)} training and {len(test_x)} test images from {cfg.data_dir}")
    return fit(cfg, run, device, x, y, test_x, test_y)


def fit(cfg: TrainConfig, run: RunDir, device: torch.device, x: torch.Tensor, y: torch.Tensor,
        test_x: torch.Tensor, test_y: torch.Tensor) -> dict[str, Any]:
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
    state, _ = resume_or_start(run, model, optimizer, scheduler, config, cfg.resume, RESUME_MAY_DIFFER)
    iterable = None
    if cfg.loader == "iterable":
        shards = distributed.world_size() * max(cfg.num_workers, 1)
        if distributed.world_size() > 1 and len(x) < shards:
            raise UserError(f"{len(x)} training images cannot feed {shards} processes x workers")
        iterable = FashionIterable(x.cpu(), y.cpu(), cfg.batch_size, cfg.seed, cfg.shuffle)
    mine = distributed.eval_range(len(test_x))  # each rank evaluates its slice; results are gathered
    test_batches = TensorBatches(test_x, test_y, chunk(torch.tensor(mine), 1000))
    train_loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    loss_fn = nn.CrossEntropyLoss()  # reported test loss: plain cross-entropy, comparable to the tutorial's
    autocast = autocast_dtype(device, cfg.precision)
    log.info(f"precision: {'bf16 autocast' if autocast else 'fp32'} ({cfg.precision})")
    max_steps = cfg.max_steps or None

    def checkpoint(s: TrainState) -> None:
        if cfg.save_every_steps and s.global_step % cfg.save_every_steps == 0 and distributed.is_main():
            save_checkpoint(run, model, optimizer, scheduler, s, config)

    metrics: dict[str, Any] = {}
    while state.epoch < cfg.epochs and not (max_steps and state.global_step >= max_steps):
        started = time.perf_counter()
        log.info(f"Epoch {state.epoch + 1}\n-------------------------------")
        train = train_one_epoch(
            model, train_batches(cfg, x, y, state.epoch, state.step_in_epoch, iterable), train_loss,
            optimizer, state, device=device, scheduler=scheduler, log_interval=cfg.log_interval,
            dataset_size=len(x), num_batches=steps_per_epoch, max_steps=max_steps, on_step=checkpoint,
            progress=not cfg.quiet, autocast_dtype=autocast)
        metrics = evaluate(net, test_batches, loss_fn, device=device, num_classes=len(CLASSES),
                           progress=not cfg.quiet, autocast_dtype=autocast, gather=distributed.gather_cat)
        log.info(format_test_line(metrics))
        if (warning := single_class_warning(metrics, CLASSES)):
            log.warning(warning)
        seconds = time.perf_counter() - started
        state.train_seconds += seconds
        record = epoch_record(state, optimizer.param_groups[0]["lr"], train, metrics, "test", seconds)
        log.info(epoch_summary(record, "test"))
        main = distributed.is_main()  # only rank 0 writes files
        finished = finish_epoch(run, state, record, metrics["accuracy"], steps_per_epoch, lambda path: main and
                                save_model_dir(path, net, cfg.arch, cfg.dropout, cfg.normalize))
        if main:
            save_checkpoint(run, model, optimizer, scheduler, state, config)
            write_metrics(run, cfg, state, metrics)
        if not finished:
            break
    if distributed.is_main():
        write_run_report(run.root, "Fashion-MNIST run", config,
                         {"training images": len(x), "test images": len(test_x)}, state, "test", CLASSES)
    distributed.barrier()
    log.info("Done!")
    return metrics


def write_metrics(run: RunDir, cfg: TrainConfig, state: TrainState, final: dict[str, Any]) -> None:
    write_json(run.metrics, {
        "test_accuracy": final["accuracy"], "test_loss": final["loss"], "test_macro_f1": final["macro_f1"],
        "best_test_accuracy": state.best_metric, "best_epoch": state.best_epoch,
        "epochs_completed": state.epoch, "global_step": state.global_step,
        "train_seconds": state.train_seconds, "confusion_matrix": final["confusion_matrix"],
        "classes": list(CLASSES), "history": state.history, "config": dataclasses.asdict(cfg),
    })
