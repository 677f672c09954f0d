"""The `fashion train` configuration: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.errors import UserError


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str = _f("data", "folder with the IDX files (raw or .gz), or where to download them")
    download: bool = _f(True, "download the data set when it is not found in --data-dir")
    arch: Literal["mlp", "tutorial", "cnn"] = _f(
        "mlp", "mlp: tutorial layers, dropout on hidden layers; tutorial: the exact tutorial stack; cnn")
    epochs: int = _f(8, "passes over the training set")
    batch_size: int = _f(512, "examples per optimizer step")
    lr: float = _f(4e-3, "peak learning rate (one-cycle) or the constant rate")
    schedule: Literal["onecycle", "constant"] = _f("onecycle", "learning-rate schedule (per step)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    dropout: float = _f(0.0, "dropout probability (mlp and cnn); label smoothing regularises the default")
    label_smoothing: float = _f(0.1, "cross-entropy label smoothing while training")
    precision: Literal["auto", "fp32", "bf16"] = _f(
        "auto", "auto: bfloat16 autocast where it is fast (GPUs, CPUs with AVX512-BF16/AMX), else fp32")
    normalize: bool = _f(True, "standardise pixels with the training set's mean/std")
    shuffle: bool = _f(True, "reshuffle the training set every epoch (the tutorial does not)")
    loader: Literal["tensor", "iterable"] = _f(
        "tensor", "tensor: batches sliced from memory; iterable: IterableDataset + DataLoader workers")
    num_workers: int = _f(0, "DataLoader worker processes for --loader iterable")
    out: str = _f("runs/fashion", "run directory (metrics.json, best/, last/, checkpoints/)")
    seed: int = _f(42, "random seed (weights, dropout, data order)")
    resume: bool = _f(False, "continue from the newest complete checkpoint in --out")
    save_every_steps: int = _f(0, "also checkpoint every N optimizer steps (0: at epoch ends only)")
    max_steps: int = _f(0, "stop after N optimizer steps in total (0: no limit)")
    device: str = _f("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    log_interval: int = _f(100, "print the tutorial's loss line every N batches (0: never)")
    quiet: bool = _f(False, "only warnings and errors on the console (train.log keeps everything)")

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {value})")
        if not self.lr > 0:
            raise UserError(f"--lr must be positive (got {self.lr})")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1) (got {self.dropout})")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing must be in [0, 1) (got {self.label_smoothing})")
        for name in ("num_workers", "save_every_steps", "max_steps", "log_interval"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must not be negative")
        if self.weight_decay < 0:
            raise UserError("--weight-decay must not be negative")


# Settings that may change between a run and its --resume without changing the result.
RESUME_MAY_DIFFER = ("out", "resume", "device", "quiet", "log_interval", "max_steps",
                     "save_every_steps", "data_dir", "download")
