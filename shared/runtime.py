"""Seeding, RNG state capture/restore and device selection."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np
import torch

from shared.errors import UserError


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def capture_rng() -> dict[str, Any]:
    """All global RNG states, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.copy()), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _others_running(samples: int = 3, interval: float = 0.01) -> int:
    """Runnable threads of other processes right now (Linux ``/proc/loadavg``; 0 where unknown).

    The minimum over a few samples 10 ms apart, so that a short burst (a shell, a finishing process)
    does not count: only work that keeps the cores busy does.
    """
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - 1)  # this process's own thread
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, min(counts))


def set_threads(requested: int, adapt: bool) -> str | None:
    """Apply ``--threads``; returns a line for the log when other processes keep cores busy.

    0 (auto) keeps PyTorch's default of one thread per core. When other processes keep some of the
    cores busy, oversubscribed cores cost far more than the threads gain (measured here: ``afqmc
    predict`` at 77 pairs/s with 2 threads beside a busy process, 838 pairs/s with 1 thread); with
    ``adapt`` (inference) auto then uses the cores left. Training only says so: the thread count can
    change floating-point rounding, and a resumed run is bit-identical at the same thread count.
    """
    if requested > 0:
        torch.set_num_threads(requested)
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    default = torch.get_num_threads()
    busy = _others_running()
    if not busy or default + busy <= cores:
        return None
    chosen = max(1, cores - busy)
    if not adapt:
        return (f"note: other processes keep {busy} of the {cores} cores busy; with {default} threads this run "
                f"may be several times slower than with --threads {chosen}")
    torch.set_num_threads(chosen)
    return f"using {chosen} of {default} CPU threads: other processes keep {busy} of the {cores} cores busy " \
           "(--threads N to choose)"


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; any explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine (use --device cpu or auto)")
    return device


def adamw(params: Any, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, with the fused single-kernel update where PyTorch has one (CPU, CUDA)."""
    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
