"""The generic train-one-epoch loop (evaluation and prediction: :mod:`shared.evaluation`).

Batches are ``(inputs, targets)`` where ``inputs`` is a Tensor (``model(inputs)``) or a mapping
(``model(**inputs)``); the model returns logits or an object with ``.logits``. The loops never
synchronise with the host on every step: losses accumulate on the device and are read only at
log points.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm


log = logging.getLogger("pairtrain")


@dataclass
class TrainState:
    """Where training is: what a resumable checkpoint records and the loop advances."""

    epoch: int = 0  # 0-based index of the epoch in progress
    step_in_epoch: int = 0  # optimizer steps completed in the current epoch
    global_step: int = 0  # optimizer steps completed overall
    best_metric: float | None = None  # the --select-by value of the best evaluation
    best_epoch: int | None = None
    best_step: int | None = None  # global step of the best evaluation (several per epoch with --eval-every-steps)
    evals_since_best: int = 0  # evaluations in a row without improvement (--patience)
    stopped_early: bool = False  # --patience ended the run
    train_seconds: float = 0.0  # wall time spent training/evaluating, summed across resumes
    history: list[dict[str, Any]] = field(default_factory=list)  # one entry per evaluation
    log_rows: list[dict[str, Any]] = field(default_factory=list)  # one entry per training log point
    # The current epoch's summed training loss and example count so far, so that an epoch resumed
    # mid-way reports its mean over the whole epoch, not over the resumed part. While the epoch runs
    # the sum is a device tensor (no host sync per step); checkpoints store it as a float.
    epoch_loss_sum: float | torch.Tensor = 0.0
    epoch_samples: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The state as plain Python values (what a checkpoint stores)."""
        return {**dataclasses.asdict(self), "epoch_loss_sum": float(self.epoch_loss_sum)}

    def next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_loss_sum, self.epoch_samples = 0.0, 0


def to_device(inputs: Any, device: torch.device) -> Any:
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, Mapping):
        return {k: to_device(v, device) for k, v in inputs.items()}
    return inputs


def forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return out.logits if hasattr(out, "logits") else out


def autocast_region(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def progress_bar(total: int | None, desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar that is silent when stderr is not a terminal (log files stay readable)."""
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not (enabled and sys.stderr.isatty()))


def _batch_size(targets: torch.Tensor) -> int:
    return int(targets.shape[0])


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> None:
    """``nn.utils.clip_grad_norm_``, bit for bit, without its multiply-by-1.0 pass when the norm is
    within ``max_norm``: on a CPU that pass rewrote every gradient (470 MB for mE5-small, ~20 ms a step)
    to change nothing. On a GPU the test would wait for the device, so it always multiplies there."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = nn.utils.get_total_norm(grads)
    # The factor clip_grads_with_norm_ would multiply by, computed as it does (a tensor, not a float).
    if total.device.type != "cpu" or bool(max_norm / (total + 1e-6) < 1.0):
        nn.utils.clip_grads_with_norm_(params, max_norm, total)


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    max_grad_norm: float | None, state: TrainState,
                    on_step: Callable[[TrainState], None] | None, loss_sum: torch.Tensor, samples: int) -> None:
    state.epoch_loss_sum, state.epoch_samples = loss_sum.clone(), samples
    if max_grad_norm:
        clip_gradients(list(model.parameters()), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state.step_in_epoch += 1
    state.global_step += 1
    if on_step is not None:
        on_step(state)


def _forward_backward(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], inputs: Any,
                      targets: torch.Tensor, group: int, device: torch.device, autocast_dtype: torch.dtype | None
                      ) -> tuple[torch.Tensor, int]:
    """One batch's loss (returned unscaled, with the batch's size) and its gradients, accumulated with
    the loss scaled by 1/``group`` so that ``group`` equal batches equal one ``group``-times-larger batch."""
    inputs, targets = to_device(inputs, device), to_device(targets, device)
    with autocast_region(device, autocast_dtype):
        loss = loss_fn(forward(model, inputs), targets)
    (loss / group).backward()
    return loss, _batch_size(targets)


def _log_point(state: TrainState, loss: float, lr: float, elapsed: float, seen: int, seen_before: int,
               dataset_size: int | None, bar: tqdm) -> None:
    """A log point: the tutorial's ``loss: 0.935758  [ 6400/60000]`` line, the bar's postfix and a row
    (step, epoch, lr, train_loss, seconds) in ``state.log_rows``."""
    done = seen_before + seen  # examples of this epoch so far (a short last batch counts as itself)
    size = dataset_size if dataset_size is not None else done
    log.info(f"loss: {loss:>7f}  [{min(done, size):>5d}/{size:>5d}]")
    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", per_s=f"{seen / elapsed:.0f}", refresh=False)
    # The step this batch's gradient goes into, counted from 1 as evaluations count theirs (the N-th step).
    state.log_rows.append({"step": state.global_step + 1, "epoch": state.epoch + 1, "lr": lr, "train_loss": loss,
                           "seconds": state.train_seconds + elapsed})


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Any, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    *,
    device: torch.device,
    scheduler: Any = None,
    max_grad_norm: float | None = None,
    accum_steps: int = 1,
    autocast_dtype: torch.dtype | None = None,
    log_interval: int = 100,
    dataset_size: int | None = None,
    num_batches: int | None = None,
    max_steps: int | None = None,
    on_step: Callable[[TrainState], None] | None = None,
    progress: bool = True,
    stop: Callable[[], Any] | None = None,
) -> dict[str, float]:
    """Train over ``batches`` (already positioned after ``state.step_in_epoch`` steps on resume).

    Every ``accum_steps`` batches make one optimizer step (loss scaled so that k equal batches
    equal one k-times-larger batch). ``on_step(state)`` runs after each optimizer step, e.g. to
    save a checkpoint; training stops once ``state.global_step`` reaches ``max_steps``.
    Every ``log_interval`` batches is a log point (:func:`_log_point`).
    ``stop()`` is asked after every optimizer step; when it answers truthy the epoch ends there
    (``"stopped": True`` in the result) with the state at that completed step.
    """
    model.train()
    started = time.perf_counter()
    loss_sum = torch.full((), float(state.epoch_loss_sum), device=device)  # carried over a resume
    seen, seen_before = 0, state.epoch_samples
    batch_idx = state.step_in_epoch * accum_steps  # batches of this epoch already consumed
    pending = 0  # batches accumulated since the last optimizer step
    stopped = False
    bar = progress_bar(num_batches, f"epoch {state.epoch + 1}", progress)
    bar.update(batch_idx)
    optimizer.zero_grad(set_to_none=True)
    for inputs, targets in batches:
        if max_steps is not None and state.global_step >= max_steps:
            break
        group = accum_steps
        if num_batches is not None:  # a short final group is averaged over its own size
            group = min(accum_steps, num_batches - (batch_idx - pending))
        loss, n = _forward_backward(model, loss_fn, inputs, targets, group, device, autocast_dtype)
        loss_sum += loss.detach().float() * n
        seen, batch_idx, pending = seen + n, batch_idx + 1, pending + 1
        bar.update(1)
        if log_interval and batch_idx % log_interval == 0:
            _log_point(state, loss.item(), optimizer.param_groups[0]["lr"], time.perf_counter() - started, seen,
                       seen_before, dataset_size, bar)
        if pending == group:
            _optimizer_step(model, optimizer, scheduler, max_grad_norm, state, on_step, loss_sum, seen_before + seen)
            pending = 0
            if stop is not None and stop():
                stopped = True
                break
    if pending and not stopped:  # an iterable without a known length ended mid-group: still use those gradients
        _optimizer_step(model, optimizer, scheduler, max_grad_norm, state, on_step, loss_sum, seen_before + seen)
    bar.close()
    seconds = time.perf_counter() - started
    return {"train_loss": (loss_sum / max(seen_before + seen, 1)).item(), "train_samples": seen_before + seen,
            "train_samples_per_second": seen / max(seconds, 1e-9), "stopped": stopped}
