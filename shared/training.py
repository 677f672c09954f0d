"""Resumable training state: build, save, find and restore training checkpoints.

A checkpoint is one self-describing dict (nanoGPT style): model, optimizer, scheduler, all RNG
states, the :class:`TrainState` (epoch, step within the epoch, global step, best metric, history)
and the config. Restoring it and continuing gives bit-identical weights to a run that was never
interrupted, provided the app derives its data order from (seed, epoch) alone.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from shared.checkpoint import latest_checkpoint, remove_partial_writes, save_training_checkpoint
from shared.distributed import is_main
from shared.errors import CheckpointError, UserError
from shared.loops import TrainState
from shared.rundir import RunDir
from shared.runtime import capture_rng, restore_rng

log = logging.getLogger("pairtrain")
FORMAT = "pairtrain-train-checkpoint/1"


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying module of a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)


def build_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     state: TrainState, config: dict[str, Any], extra: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": capture_rng(),
        "state": dataclasses.asdict(state),
        "config": config,
        "extra": extra or {},
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    state: TrainState, config: dict[str, Any], keep: int = 2,
                    extra: dict[str, Any] | None = None) -> None:
    ckpt = build_checkpoint(model, optimizer, scheduler, state, config, extra)
    path = save_training_checkpoint(run.checkpoints, ckpt, state.global_step, keep=keep)
    log.debug(f"saved checkpoint {path}")


def finish_epoch(run: RunDir, state: TrainState, record: dict[str, Any], accuracy: float,
                 steps_per_epoch: int, save_model: Callable[[Path], None]) -> bool:
    """Record an evaluated epoch, keep ``best/`` (by accuracy) and ``last/``, advance the epoch.

    Returns False when the epoch was cut short by ``--max-steps`` (its position is kept so that
    a later ``--resume`` continues inside it).
    """
    state.history.append(record)
    if state.best_metric is None or accuracy > state.best_metric:
        state.best_metric, state.best_epoch = accuracy, record["epoch"]
        save_model(run.best)
    save_model(run.last)
    finished = state.step_in_epoch >= steps_per_epoch
    if finished:
        state.epoch += 1
        state.step_in_epoch = 0
    return finished


def epoch_record(state: TrainState, lr: float, train: dict[str, Any], metrics: dict[str, Any], eval_name: str,
                 seconds: float, **extra: Any) -> dict[str, Any]:
    """One ``history`` entry: the epoch's training figures and ``<eval_name>_*`` metrics."""
    return {"epoch": state.epoch + 1, "step": state.global_step, "lr": lr, **train, **extra,
            f"{eval_name}_loss": metrics["loss"], f"{eval_name}_accuracy": metrics["accuracy"],
            f"{eval_name}_macro_f1": metrics["macro_f1"], "confusion_matrix": metrics["confusion_matrix"],
            "epoch_seconds": seconds, "seconds": state.train_seconds}


def epoch_summary(record: dict[str, Any], eval_name: str) -> str:
    """The one line printed after each epoch."""
    return (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, {eval_name} accuracy "
            f"{100 * record[f'{eval_name}_accuracy']:.2f}%, macro-F1 {record[f'{eval_name}_macro_f1']:.4f}, "
            f"{record['epoch_seconds']:.1f}s ({record['train_samples_per_second']:.0f} samples/s)")


def _config_mismatch(saved: dict[str, Any], current: dict[str, Any], ignore: Iterable[str]) -> list[str]:
    skip = set(ignore)
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
            for k in sorted(set(saved) | set(current)) if k not in skip and saved.get(k) != current.get(k)]


def restore_checkpoint(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                       scheduler: Any) -> TrainState:
    unwrap(model).load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng(ckpt["rng"])
    return TrainState(**ckpt["state"])


def resume_or_start(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    config: dict[str, Any], resume: bool, ignore: Iterable[str] = ()
                    ) -> tuple[TrainState, dict[str, Any]]:
    """Restore the newest complete checkpoint in ``run`` when resuming, else a fresh state.

    Returns the state and the checkpoint's ``extra`` dict. Settings that change the training
    trajectory must match the checkpoint's config (``ignore`` lists those that may differ).
    """
    if not resume:
        return TrainState(), {}
    if is_main() and (stale := remove_partial_writes(run.checkpoints)):
        log.info(f"removed {len(stale)} partially written checkpoint(s) from an interrupted save: {', '.join(stale)}")
    found = latest_checkpoint(run.checkpoints, warn=log.warning)
    if found is None:
        log.info(f"--resume: no complete checkpoint in {run.checkpoints}; starting a fresh run")
        return TrainState(), {}
    path, ckpt = found
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {ckpt.get('format')!r}")
    diffs = _config_mismatch(ckpt.get("config", {}), config, ignore)
    if diffs:
        raise UserError(f"--resume {run.root}: settings differ from the checkpoint ({'; '.join(diffs)}); "
                        "resume with the same settings or start a new --out")
    state = restore_checkpoint(ckpt, model, optimizer, scheduler)
    log.info(f"resumed from {path} (epoch {state.epoch + 1}, step {state.step_in_epoch} of that epoch, "
             f"global step {state.global_step})")
    return state, ckpt.get("extra", {})
