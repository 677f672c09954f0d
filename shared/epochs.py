"""The epoch loop both apps run. It owns the ordering; apps supply only what differs.

Per stretch of training, in this order (the contract tests pin); a stretch is the rest of the epoch,
or up to the next multiple of ``eval_every_steps`` global steps when that comes first:

1. train the stretch's batches (``checkpoints/`` every ``save_every_steps`` steps);
2. evaluate on the dev/test set;
3. append the evaluation's record to the history, log the summary line;
4. save ``best/`` when the ``select_by`` metric improved, then ``last/`` (the same model then: hard
   links to best/'s files, not a second write); count evaluations without improvement and stop early
   after ``patience`` of them;
5. save a checkpoint (best, patience count and, at an epoch's end, the next epoch), then ``metrics.json``;
then after the last epoch (or an early stop) the run report and the final result line. Before the
first stretch, ``run_config.json`` records the run's settings (what ``--resume`` alone continues with).
A resumed run continues after the last checkpoint and takes exactly the same decisions.

A SIGINT/SIGTERM (see :mod:`shared.interrupt`) ends training after the step in progress, or the
evaluation at once; the state at the last completed step is saved as a checkpoint and
:class:`~shared.interrupt.RunInterrupted` says where. A failed write (disk full, read-only,
quota) becomes :class:`~shared.errors.WriteFailed` naming the file and the last complete checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from shared import distributed, interrupt
from shared.atomic import write_json
from shared.checkpoint import newest_checkpoint_name
from shared.errors import WriteFailed
from shared.loops import TrainState, train_one_epoch
from shared.evaluation import EvaluationStopped
from shared.metrics import single_class_warning
from shared.report import write_run_report
from shared.rundir import RunDir, log_result
from shared.tracking import open_tracking
from shared.training import (epoch_record, epoch_summary, finish_evaluation, result_line, save_checkpoint,
                             write_run_metrics)

log = logging.getLogger("pairtrain")


@dataclass
class Trainer:
    """What an app supplies to :func:`run_epochs`: its model, data, evaluation and model format."""

    run: RunDir
    model: nn.Module  # as trained (DDP-wrapped under torchrun)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    config: dict[str, Any]  # recorded in checkpoints, metrics.json and report.md
    epochs: int
    steps_per_epoch: int
    total_steps: int  # training stops after this many optimizer steps overall
    batches: Callable[[int, int], Iterable[Any]]  # (epoch, batches to skip) -> this rank's batches
    evaluate: Callable[[Callable[[], Any]], dict[str, Any]]  # (stop) -> metrics; every rank joins
    save_model: Callable[[Path], None]  # write a model directory (called on rank 0 only)
    eval_name: str  # "dev" or "test"
    class_names: list[str]
    title: str  # of report.md
    data_sizes: dict[str, int]
    train_options: dict[str, Any] = field(default_factory=dict)  # more keywords for train_one_epoch (not accum_steps)
    save_every_steps: int = 0
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)  # what a resume needs back (e.g. tokenizer)
    accum_steps: int = 1  # batches per optimizer step
    eval_every_steps: int = 0  # also evaluate when the global step is a multiple of this (0: epoch ends only)
    select_by: str = "accuracy"  # the metric that picks best/ (shared.selection)
    patience: int = 0  # stop after this many evaluations without improvement (0: never)
    epoch_header: str = "Epoch {epoch}/{epochs}"
    report_to: str = "none"  # --report-to: a tracker that gets the history's scalars (shared.tracking)
    eval_line: Callable[[dict[str, Any]], str | None] = lambda metrics: None  # an extra line after evaluation
    flops_per_example: float = 0.0  # training FLOPs per example (shared.flops); 0: FLOP/s not reported
    run_facts: dict[str, Any] = field(default_factory=dict)  # more top-level keys of metrics.json (e.g. precision)


def run_epochs(t: Trainer, state: TrainState, progress: bool) -> dict[str, Any]:
    """Train from ``state`` to the end (or to a stop request); returns the last evaluation's metrics."""
    metrics: dict[str, Any] = {}
    if distributed.is_main():  # what `--resume` alone continues with (shared.config.from_args)
        _write(t, lambda: write_json(t.run.settings, t.config), state)
    if state.stopped_early and (not t.patience or state.evals_since_best < t.patience):
        state.stopped_early = False  # resumed with more (or no) patience: the run goes on
    tracker = open_tracking(t.report_to, t.run.root, state.global_step, state.log_rows) if distributed.is_main() \
        else None
    try:
        with interrupt.stop_on_signals():
            while state.epoch < t.epochs and state.global_step < t.total_steps and not state.stopped_early:
                # --max-steps may end the run before --epochs: the header counts the epochs it will reach.
                reached = min(t.epochs, -(-t.total_steps // max(t.steps_per_epoch, 1)))
                log.info(t.epoch_header.format(epoch=state.epoch + 1, epochs=reached))
                epoch = state.epoch
                batches = iter(t.batches(epoch, state.step_in_epoch * t.accum_steps))
                while state.epoch == epoch and state.global_step < t.total_steps and not state.stopped_early:
                    metrics = _train_and_evaluate(t, state, batches, progress)
                    if tracker is not None:  # the stretch's log points, then its evaluation
                        tracker.log_points(state.log_rows)
                        tracker.evaluation(state.history[-1], t.eval_name)
    finally:
        if tracker is not None:  # an interrupted stretch's log points are in its checkpoint: write them too
            tracker.log_points(state.log_rows)
            tracker.close()
    if distributed.is_main():
        _write(t, lambda: write_run_report(t.run.root, t.title, t.config, t.data_sizes, state, t.eval_name,
                                           t.class_names), state)
    distributed.barrier()
    log.info("Done!")
    log_result(result_line(t.run, state, t.eval_name, t.select_by))
    return metrics


def _train_and_evaluate(t: Trainer, state: TrainState, batches: Iterator[Any], progress: bool) -> dict[str, Any]:
    """Steps 1-5 of the contract for one stretch of training: to the epoch's end, or to the next
    ``eval_every_steps`` multiple of the global step when that comes first."""
    started = time.perf_counter()
    left = t.steps_per_epoch - state.step_in_epoch
    steps = min(left, t.eval_every_steps - state.global_step % t.eval_every_steps) if t.eval_every_steps else left
    # Inside an epoch, exactly this stretch's batches are taken from the epoch's iterator; the last
    # stretch takes the rest (a short final accumulation group included).
    stretch = batches if steps >= left else itertools.islice(batches, steps * t.accum_steps)
    train = train_one_epoch(t.model, stretch, t.loss_fn, t.optimizer, state, scheduler=t.scheduler,
                            max_steps=t.total_steps, on_step=lambda s: _periodic_checkpoint(t, s), progress=progress,
                            stop=interrupt.requested, accum_steps=t.accum_steps, **t.train_options)
    if train.pop("stopped"):
        _stop(t, state, "during training")
    eval_started = time.perf_counter()
    try:
        metrics = t.evaluate(interrupt.requested)
    except EvaluationStopped:
        _stop(t, state, "during evaluation (the training before it is complete)")
    _after_evaluation(t, state, train, metrics, started, time.perf_counter() - eval_started)
    return metrics


def _after_evaluation(t: Trainer, state: TrainState, train: dict[str, Any], metrics: dict[str, Any], started: float,
                      eval_seconds: float) -> None:
    """Steps 3-5 of the contract, and the --patience decision."""
    if (line := t.eval_line(metrics)):
        log.info(line)
    epoch_end = state.step_in_epoch >= t.steps_per_epoch or state.global_step >= t.total_steps
    if (warning := single_class_warning(metrics, t.class_names)):
        # Inside an epoch it is an early model's normal state: a note, not a warning, until the epoch ends.
        log.log(logging.WARNING if epoch_end else logging.INFO, warning)
    seconds = time.perf_counter() - started
    state.train_seconds += seconds
    throughput = {f"{t.eval_name}_examples_per_second": metrics["n"] / max(eval_seconds, 1e-9)}
    if t.flops_per_example:
        throughput.update(train_flops_per_example=t.flops_per_example,
                          train_flops_per_second=t.flops_per_example * train["train_samples_per_second"])
    record = epoch_record(state, t.optimizer.param_groups[0]["lr"], train, metrics, t.eval_name, seconds,
                          state.step_in_epoch >= t.steps_per_epoch, **throughput)
    log.info(epoch_summary(record, t.eval_name))
    main = distributed.is_main()  # only rank 0 writes files
    _write(t, lambda: finish_evaluation(t.run, state, record, metrics, t.select_by, t.steps_per_epoch,
                                        t.save_model if main else None), state)
    if t.patience and state.evals_since_best >= t.patience and state.global_step < t.total_steps:
        state.stopped_early = True
        log.info(f"early stop: {t.select_by} did not improve in {t.patience} evaluation(s); the best was at step "
                 f"{state.best_step} (epoch {state.best_epoch}), in {t.run.best}")
    if main:
        _write(t, lambda: save_checkpoint(t.run, t.model, t.optimizer, t.scheduler, state, t.config,
                                          extra=t.checkpoint_extra), state)
        _write(t, lambda: write_run_metrics(t.run, state, metrics, t.eval_name, t.class_names, t.config,
                                                   t.run_facts), state)


def _periodic_checkpoint(t: Trainer, state: TrainState) -> None:
    if t.save_every_steps and state.global_step % t.save_every_steps == 0 and distributed.is_main():
        _write(t, lambda: save_checkpoint(t.run, t.model, t.optimizer, t.scheduler, state, t.config,
                                          extra=t.checkpoint_extra), state)


def _stop(t: Trainer, state: TrainState, when: str) -> None:
    """Save the state at the last completed step and end the run with RunInterrupted."""
    signum = interrupt.requested()
    if distributed.is_main():
        _write(t, lambda: save_checkpoint(t.run, t.model, t.optimizer, t.scheduler, state, t.config,
                                          extra=t.checkpoint_extra), state)
    distributed.barrier()
    raise interrupt.RunInterrupted(signum, f"{when} at step {state.global_step}; saved a complete checkpoint "
                                           f"{t.run.checkpoints / newest_checkpoint_name(t.run.checkpoints)}")


def _write(t: Trainer, write: Callable[[], Any], state: TrainState) -> Any:
    """Run one of the run's writes; an OSError (disk full, quota, read-only, I/O) becomes one line that
    names the file and the last complete checkpoint (the previous files are untouched)."""
    try:
        return write()
    except OSError as e:
        newest = newest_checkpoint_name(t.run.checkpoints)
        where = f"{e.filename}: " if e.filename else ""
        raise WriteFailed(f"{where}{e.strerror or e}; the last complete checkpoint is "
                          f"{newest or 'none yet'} (free space or copy the run elsewhere, then --resume)") from e
