"""Ctrl-C (SIGINT) and SIGTERM during training: finish the step, save, say how to continue.

While :func:`stop_on_signals` is active, the first SIGINT or SIGTERM only records a request; the
training loop checks it after every optimizer step (and the evaluation loop after every batch),
stops there, and the run writes a complete resumable checkpoint. A second signal raises
``KeyboardInterrupt`` at once: a checkpoint being written is then abandoned by its atomic write
(the previous one stays as it was), never left half-written.

Under torchrun the ranks agree on stopping (an all-reduce of the flag per step), so every rank
stops at the same step and rank 0 writes the checkpoint.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

import torch

from shared import distributed

_requested: list[int] = []  # the signal received, while stop_on_signals() is active


class RunInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; the CLI exits with ``128 + signal``."""

    def __init__(self, signum: int, where: str):
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request for the duration of training (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: object) -> None:
        if _requested:  # a second signal: stop now (atomic writes keep the last checkpoint intact)
            raise KeyboardInterrupt
        _requested.append(signum)

    previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _requested.clear()


def requested() -> int | None:
    """The signal that asked training to stop (agreed across torchrun ranks), or None."""
    mine = _requested[0] if _requested else 0
    if distributed.world_size() > 1:
        flag = torch.tensor([mine], dtype=torch.long, device=distributed.collective_device())
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        mine = int(flag.item())
    return mine or None
