"""Resumable training state: build, save, find and restore training checkpoints.

A checkpoint is one self-describing dict (nanoGPT style): model, optimizer, scheduler, all RNG
states, the :class:`TrainState` (epoch, step within the epoch, global step, best metric, history)
and the config. Restoring it and continuing gives bit-identical weights to a run that was never
interrupted, provided the app derives its data order from (seed, epoch) alone.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from shared.atomic import link_dir, write_json
from shared.checkpoint import latest_checkpoint, remove_partial_writes, save_training_checkpoint
from shared.distributed import is_main
from shared.errors import CheckpointError, UserError
from shared.loops import TrainState
from shared.rundir import RunDir
from shared.runtime import capture_rng, restore_rng
from shared.flops import format_flops
from shared.score_metrics import headline, metric_names
from shared.selection import best_record, record_evaluation

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
        "state": state.as_dict(),
        "config": config,
        "extra": extra or {},
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    state: TrainState, config: dict[str, Any], keep: int = 2,
                    extra: dict[str, Any] | None = None) -> None:
    """Write ``checkpoints/step-N/``; ``extra`` holds what the app needs back on resume (weights-only types)."""
    ckpt = build_checkpoint(model, optimizer, scheduler, state, config, extra)
    path = save_training_checkpoint(run.checkpoints, ckpt, state.global_step, keep=keep)
    log.debug(f"saved checkpoint {path}")


def finish_evaluation(run: RunDir, state: TrainState, record: dict[str, Any], metrics: dict[str, Any],
                      select_by: str, steps_per_epoch: int, save_model: Callable[[Path], None] | None) -> None:
    """Record an evaluation, keep ``best/`` (by ``select_by``) and ``last/``, and advance to the next
    epoch when this one is complete (an epoch cut short by ``--max-steps`` keeps its position, so that
    a later ``--resume`` continues inside it). ``save_model`` is None on ranks that write nothing."""
    state.history.append(record)
    improved = record_evaluation(state, metrics, select_by, record["epoch"])
    if save_model is not None and improved:
        save_model(run.best)
        link_dir(run.best, run.last)  # the same model: written once (mE5-small: 2.1 s and 470 MB a save)
    elif save_model is not None:
        save_model(run.last)
    if state.step_in_epoch >= steps_per_epoch:
        state.next_epoch()


def epoch_record(state: TrainState, lr: float, train: dict[str, Any], metrics: dict[str, Any], eval_name: str,
                 seconds: float, epoch_end: bool = True, **extra: Any) -> dict[str, Any]:
    """One ``history`` entry: the stretch's training figures and ``<eval_name>_*`` metrics; ``kind`` says
    whether the evaluation closed its epoch (``epoch``) or came inside it (``mid-epoch``)."""
    scalars = ("loss", *metric_names(metrics))
    return {"epoch": state.epoch + 1, "step": state.global_step, "kind": "epoch" if epoch_end else "mid-epoch",
            "lr": lr, **train, **extra, **{f"{eval_name}_{k}": metrics[k] for k in scalars},
            **{k: metrics[k] for k in ("confusion_matrix", "threshold", "argmax_accuracy") if k in metrics},
            "epoch_seconds": seconds, "seconds": state.train_seconds}


def epoch_summary(record: dict[str, Any], eval_name: str) -> str:
    """The one line printed after each evaluation."""
    threshold = f" at threshold {record['threshold']:.3f}" if "threshold" in record else ""
    flops = f", {format_flops(record['train_flops_per_second'])}" if "train_flops_per_second" in record else ""
    where = f"epoch {record['epoch']}" + (" (mid-epoch)" if record.get("kind") == "mid-epoch" else "")
    if f"{eval_name}_pearson" in record:
        scores = (f"{eval_name} Pearson {record[f'{eval_name}_pearson']:.4f}, Spearman "
                  f"{record[f'{eval_name}_spearman']:.4f}, MSE {record[f'{eval_name}_mse']:.4f}")
    else:
        scores = (f"{eval_name} accuracy {100 * record[f'{eval_name}_accuracy']:.2f}%{threshold}, macro-F1 "
                  f"{record[f'{eval_name}_macro_f1']:.4f}")
    return (f"{where}: train loss {record['train_loss']:.4f}, {scores}, "
            f"{eval_name} loss {record[f'{eval_name}_loss']:.4f}, step {record['step']}, "
            f"{record['epoch_seconds']:.1f}s ({record['train_samples_per_second']:.0f} samples/s{flops})")


# Settings that set how long a run goes on: ``--resume`` may change them to extend (or shorten) a run.
HORIZON = ("epochs", "max_steps")


def class_weights(spec: str, counts: Sequence[int], names: Sequence[str]) -> list[float] | None:
    """``--class-weights``: ``none`` -> None; ``balanced`` -> n / (classes x count) per class (scikit-learn's
    "balanced": every class then carries the same total weight); or explicit comma-separated weights."""
    if spec == "none":
        return None
    if spec == "balanced":
        if (missing := [name for name, c in zip(names, counts) if c == 0]):
            raise UserError(f"--class-weights balanced: no training example has label {', '.join(missing)}")
        total = sum(counts)
        return [total / (len(counts) * c) for c in counts]
    weights = [float(w) for w in spec.split(",")]
    if len(weights) != len(names):
        raise UserError(f"--class-weights {spec}: {len(weights)} weights for {len(names)} labels "
                        f"({', '.join(names)}); give one per label, in that order")
    return weights


def write_run_metrics(run: RunDir, state: TrainState, final: dict[str, Any], eval_name: str,
                      class_names: list[str], config: dict[str, Any], facts: dict[str, Any] | None = None) -> None:
    """``metrics.json``: the final evaluation's figures, the best epoch's, the history and the config.

    ``confusion_matrix`` is the final evaluation's (epoch ``final_epoch``); ``best_confusion_matrix``
    is the best epoch's, the model in ``best/`` and the one ``confusion.png`` shows. ``facts`` are
    more top-level keys the app records (e.g. how the precision was chosen).
    """
    best = best_record(state)
    scalars = ("loss", *metric_names(final))
    flags = {k: final[k] for k in ("single_class_prediction", "single_score_prediction") if k in final}
    write_json(run.metrics, {
        **{f"{eval_name}_{k}": final[k] for k in scalars}, **flags,
        **{f"best_{eval_name}_{k}": best[f"{eval_name}_{k}"] if best else None for k in scalars},
        "best_epoch": state.best_epoch, "best_step": state.best_step, "stopped_early": state.stopped_early,
        "final_epoch": state.history[-1]["epoch"] if state.history else None,
        "epochs_completed": state.epoch, "global_step": state.global_step, "train_seconds": state.train_seconds,
        "confusion_matrix": final.get("confusion_matrix"),
        "best_confusion_matrix": best.get("confusion_matrix") if best else None,
        "classes": list(class_names), "history": state.history, "config": config, **(facts or {}),
    })


def result_line(run: RunDir, state: TrainState, eval_name: str, select_by: str = "accuracy") -> str:
    """The last line of a run, shown even with ``--quiet``: where the best model is and how good it is by
    the metric that chose it (``--select-by``), with the accuracy beside any other."""
    if not state.history:
        return f"no evaluation was made; checkpoints are in {run.checkpoints}"
    last, best = state.history[-1], best_record(state) or state.history[-1]
    return (f"best {headline(best, eval_name, select_by)} (epoch {state.best_epoch}, step {best['step']}) in "
            f"{run.best}; final {headline(last, eval_name, select_by)} (epoch {last['epoch']}, step {last['step']}); "
            f"{state.train_seconds:.1f}s")


def _config_mismatch(saved: dict[str, Any], current: dict[str, Any], ignore: Iterable[str],
                     defaults: dict[str, Any]) -> list[str]:
    """Settings that differ; a setting the checkpoint predates counts as its default (so a run started
    before an option existed resumes as long as the option keeps its default)."""
    skip = set(ignore) | set(HORIZON)
    return [f"{k}: checkpoint {saved.get(k, defaults.get(k))!r} vs now {current.get(k)!r}"
            for k in sorted(set(saved) | set(current))
            if k not in skip and saved.get(k, defaults.get(k)) != current.get(k)]


def find_checkpoint(run: RunDir, resume: bool) -> tuple[Path, dict[str, Any]] | None:
    """The newest complete checkpoint in ``run`` when resuming (None: start a fresh run).

    Apps look at it before building the model, e.g. to reuse the tokenizer saved in its ``extra``.
    """
    if not resume:
        return None
    if is_main() and (stale := remove_partial_writes(run.checkpoints)):
        log.info(f"removed {len(stale)} partially written checkpoint(s) from an interrupted save: {', '.join(stale)}")
    found = latest_checkpoint(run.checkpoints, warn=log.warning)
    if found is None:
        log.info(f"--resume: no complete checkpoint in {run.checkpoints}; starting a fresh run")
        return None
    path, ckpt = found
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {ckpt.get('format')!r}")
    return found


def _replay_schedule(scheduler: Any, steps: int) -> None:
    """Advance a freshly built scheduler ``steps`` times: the new horizon's learning rate at this step."""
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps):
            scheduler.step()


def restore_or_start(found: tuple[Path, dict[str, Any]] | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: Any, config: dict[str, Any], ignore: Iterable[str] = (),
                     defaults: dict[str, Any] | None = None) -> TrainState:
    """Restore ``found`` (from :func:`find_checkpoint`) into model, optimizer, scheduler and RNGs.

    Settings that change the training trajectory must match the checkpoint's config (``ignore``
    lists those that may differ; ``defaults`` stand in for settings the checkpoint predates). The
    horizon (``--epochs``, ``--max-steps``) may change: the
    learning-rate schedule is then rebuilt for the new total and replayed to the current step, so
    training continues at the rate the longer (or shorter) schedule has there.
    """
    if found is None:
        return TrainState()
    path, ckpt = found
    saved = ckpt.get("config", {})
    diffs = _config_mismatch(saved, config, ignore, defaults or {})
    if diffs:
        raise UserError(f"--resume {path.parent.parent}: settings differ from the checkpoint ({'; '.join(diffs)}); "
                        "resume with the same settings or start a new --out")
    try:
        unwrap(model).load_state_dict(ckpt["model"])
    except RuntimeError as e:  # e.g. a checkpoint from an older layout of the same architecture
        raise CheckpointError(f"{path}: its weights do not fit the model being trained "
                              f"({' '.join(str(e).split())[:300]}); start a new --out") from None
    optimizer.load_state_dict(ckpt["optimizer"])
    state = TrainState(**ckpt["state"])
    extended = any(saved.get(k) != config.get(k) for k in HORIZON if k in config)
    if extended:
        _check_horizon(path, config, state)
        if scheduler is not None:
            _replay_schedule(scheduler, state.global_step)
        changes = ", ".join(f"{k} {saved.get(k)} -> {config.get(k)}" for k in HORIZON if saved.get(k) != config.get(k))
        log.info(f"--resume with a new horizon ({changes}): the learning-rate schedule is rebuilt for it and "
                 f"continues from step {state.global_step}")
    elif scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    restore_rng(ckpt["rng"])
    log.info(f"resumed from {path} (epoch {state.epoch + 1}, step {state.step_in_epoch} of that epoch, "
             f"global step {state.global_step})")
    return state


def _check_horizon(path: Path, config: dict[str, Any], state: TrainState) -> None:
    if config.get("epochs", state.epoch) < state.epoch:
        raise UserError(f"--resume {path.parent.parent}: the run has already completed {state.epoch} epoch(s); "
                        f"--epochs must be at least {state.epoch}")
    if config.get("max_steps") and config["max_steps"] < state.global_step:
        raise UserError(f"--resume {path.parent.parent}: the run is already at step {state.global_step}; "
                        f"--max-steps must be 0 or at least {state.global_step}")
