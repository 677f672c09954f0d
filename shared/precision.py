"""What ``--precision auto`` computes in: the one place that decides, by timing, and says why.

bf16 autocast pays only where bf16 matrix products are clearly faster than fp32, and a CPU's feature
flags do not tell which. Linear layers at transformer shapes, 2 threads, measured here:

=========================================  =====================  ==================
CPU                                         bf16                   fp32
=========================================  =====================  ==================
Intel, AVX512-BF16 without AMX (issue 25)  ~170 GFLOP/s           220-340 GFLOP/s
AMD EPYC, AVX512-BF16 without AMX          760-870 GFLOP/s        ~195 GFLOP/s
Intel with AMX                             several times fp32's
AVX2 only                                  emulated, ~8x slower
=========================================  =====================  ==================

So on a CPU ``auto`` times (once per CPU model, torch version, thread count and shape: see
:func:`remembered`) the forward (and, for training, backward) pass of the model's largest
linear layer at the rows one batch feeds it, in both precisions, interleaved so that both see the same
load, and keeps the best of several rounds: load slows both sides, so the ratio holds up where absolute
times do not. bf16 is taken only when it is at least :data:`BF16_MARGIN` faster, because autocast adds
casts and a small gain is not worth bf16's rounding. On a GPU, bf16 where the device supports it.

Under torchrun rank 0 times and every rank takes its choice. A resumed run computes in the
precision it started with (apps save :attr:`Precision.name` in the checkpoint and pass it back as
``resumed``): a timing taken today must not change a resumed run's numbers.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from shared.atomic import write_json
from shared.distributed import broadcast_object, is_main

BF16_MARGIN = 1.25  # bf16 must be this much faster than fp32 to be chosen
PROBE_ROUNDS = 6  # interleaved fp32/bf16 rounds; the best of each side counts
PROBE_MAX_ROWS = 4096  # rows timed at most (a batch of long sequences has more; the ratio has settled by then)


@dataclass(frozen=True)
class Precision:
    """The precision chosen, what was asked for, and how it was decided (for the start-up line and
    ``metrics.json``)."""

    autocast: torch.dtype | None  # None: fp32
    asked: str  # auto, fp32 or bf16
    how: str

    @property
    def name(self) -> str:
        return "bf16" if self.autocast is not None else "fp32"

    def describe(self) -> str:
        return f"{'bf16 autocast' if self.autocast is not None else 'fp32'} (--precision {self.asked}: {self.how})"

    def record(self) -> dict[str, str]:
        return {"asked": self.asked, "chosen": self.name, "how": self.how}


def bf16_pays(fp32_seconds: float, bf16_seconds: float) -> bool:
    """Whether a probe's times favour bf16 by at least :data:`BF16_MARGIN`."""
    return fp32_seconds >= BF16_MARGIN * bf16_seconds


def largest_linear(model: nn.Module) -> nn.Linear | None:
    """The linear layer with the most weights: where a model spends most of its matrix products."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return max(layers, key=lambda m: m.weight.numel(), default=None)


def choose_precision(device: torch.device, asked: str, model: nn.Module, rows: int, *, backward: bool = True,
                     resumed: str | None = None) -> Precision:
    """The precision to compute in on ``device``; ``rows`` is what one batch feeds a linear layer
    (examples, or tokens for a sequence model); ``resumed`` the precision a resumed run started with."""
    if asked in ("fp32", "bf16"):
        return Precision(torch.bfloat16 if asked == "bf16" else None, asked, "as asked")
    if resumed in ("fp32", "bf16"):
        return Precision(torch.bfloat16 if resumed == "bf16" else None, asked, "as the run it resumes began")
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return Precision(torch.bfloat16 if ok else None, asked, f"this GPU {'supports' if ok else 'lacks'} bf16")
    if device.type != "cpu":
        return Precision(None, asked, f"no bf16 autocast on {device.type}")
    layer = largest_linear(model)
    if layer is None:
        return Precision(None, asked, "the model has no linear layer to time")
    rows = 2 ** round(math.log2(max(1, min(rows, PROBE_MAX_ROWS))))  # shapes close by share one timing
    passes = "forward+backward" if backward else "forward"
    shape = f"{rows}x{layer.in_features}x{layer.out_features} linear {passes}"
    # Under torchrun every rank must compute alike: rank 0 times (or remembers), the others take its figures.
    (fp32, bf16), when = broadcast_object(
        remembered(shape, lambda: time_linear(layer.in_features, layer.out_features, rows, backward))
        if is_main() else None)
    how = (f"timed a {shape}{when}: fp32 {fp32 * 1e3:.2f} ms, bf16 {bf16 * 1e3:.2f} ms "
           f"({fp32 / bf16:.2f}x; bf16 needs {BF16_MARGIN:g}x)")
    return Precision(torch.bfloat16 if bf16_pays(fp32, bf16) else None, asked, how)


def timings_file() -> Path:
    """Where timings are remembered: ``$PAIRTRAIN_CACHE/precision.json`` (default ``~/.cache/pairtrain``)."""
    root = os.environ.get("PAIRTRAIN_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache",
                                                      "pairtrain")
    return Path(root) / "precision.json"


def remembered(shape: str, measure: Callable[[], tuple[float, float]]) -> tuple[tuple[float, float], str]:
    """``measure()``'s (fp32, bf16) seconds for ``shape`` on this CPU, torch and thread count, taken once
    and remembered in :func:`timings_file`: a timing near the margin could otherwise flip between two
    runs of one command, and the same seed must give the same model. Returns the timing and a note of
    when it was taken; without a writable cache every run times afresh."""
    key = f"{_cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {shape}"
    path = timings_file()
    known = _read_timings(path)
    entry = known.get(key)
    if isinstance(entry, dict) and all(isinstance(entry.get(k), float) for k in ("fp32", "bf16")):
        return (entry["fp32"], entry["bf16"]), f" on {entry.get('date')} (remembered in {path})"
    fp32, bf16 = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**known, key: {"fp32": fp32, "bf16": bf16, "date": datetime.date.today().isoformat()}})
    except OSError:
        return (fp32, bf16), ""
    return (fp32, bf16), f" (remembered in {path}; delete it to time again)"


def _read_timings(path: Path) -> dict:
    """The remembered timings; a missing, unreadable or damaged file is an empty memory (timed again)."""
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return platform.processor() or platform.machine()


def time_linear(in_features: int, out_features: int, rows: int, backward: bool) -> tuple[float, float]:
    """Best-of-rounds seconds of one fp32 and one bf16-autocast pass through a fresh linear layer,
    interleaved. Touches no global RNG (a seeded run draws the same numbers with or without a probe)."""
    gen = torch.Generator().manual_seed(0)
    weight = (torch.randn(out_features, in_features, generator=gen) / in_features ** 0.5).requires_grad_(backward)
    bias = torch.zeros(out_features, requires_grad=backward)
    x = torch.randn(rows, in_features, generator=gen, requires_grad=backward)

    def once(dtype: torch.dtype | None) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None), \
                torch.set_grad_enabled(backward):
            y = nn.functional.linear(x, weight, bias)
        if backward:
            y.float().sum().backward()
        return time.perf_counter() - start

    once(None), once(torch.bfloat16)  # first calls build the kernels
    best = [float("inf"), float("inf")]
    for i in range(PROBE_ROUNDS):
        best[0], best[1] = min(best[0], once(None)), min(best[1], once(torch.bfloat16))
        if i >= 1 and best[1] > 2 * best[0]:  # emulated bf16 (AVX2): clear after two rounds, and slow to time
            break
    return best[0], best[1]
