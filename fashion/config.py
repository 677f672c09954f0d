"""The `fashion train` configuration: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fashion import DEFAULT_DATA_DIR
from shared.config import option, shared_option
from shared.errors import UserError


_f = option


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str = _f(DEFAULT_DATA_DIR, "folder with the IDX files (raw or .gz); only the default is created "
                                         "for a download")
    download: bool = _f(True, "download the data set when it is not found in --data-dir")
    arch: Literal["mlp", "tutorial", "cnn"] = _f(
        "mlp", "mlp: tutorial layers, dropout on hidden layers; tutorial: the exact tutorial stack; cnn")
    epochs: int = shared_option("epochs", 8)
    batch_size: int = _f(512, "examples per optimizer step")
    lr: float = _f(4e-3, "peak learning rate (one-cycle) or the constant rate")
    schedule: Literal["onecycle", "constant"] = _f("onecycle", "learning-rate schedule (per step)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    dropout: float = _f(0.0, "dropout probability (mlp and cnn); label smoothing regularises the default")
    label_smoothing: float = _f(0.1, "cross-entropy label smoothing while training")
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    normalize: bool = _f(True, "standardise pixels with the training set's mean/std")
    shuffle: bool = _f(True, "reshuffle the training set every epoch (the tutorial does not)")
    loader: Literal["tensor", "iterable"] = _f(
        "tensor", "tensor: batches sliced from memory; iterable: IterableDataset + DataLoader workers")
    num_workers: int = _f(0, "DataLoader worker processes for --loader iterable")
    out: str = shared_option("out", "runs/fashion")
    seed: int = shared_option("seed", 42)
    resume: bool = shared_option("resume", False)
    save_every_steps: int = shared_option("save_every_steps", 0)
    max_steps: int = shared_option("max_steps", 0)
    device: str = shared_option("device", "auto")
    threads: int = shared_option("threads", 0)
    log_interval: int = shared_option("log_interval", 100)
    quiet: bool = shared_option("quiet", False)

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
        for name in ("num_workers", "save_every_steps", "max_steps", "log_interval", "threads"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must not be negative")
        if self.weight_decay < 0:
            raise UserError("--weight-decay must not be negative")


# Settings that may change between a run and its --resume without changing the result.
RESUME_MAY_DIFFER = ("out", "resume", "device", "threads", "quiet", "log_interval", "max_steps",
                     "save_every_steps", "data_dir", "download")


@dataclass(frozen=True)
class LoadConfig:
    """How ``eval``, ``predict`` and ``export`` find the model."""

    model_dir: str = _f("", "a model directory (e.g. runs/fashion/best) or a whole-model .pth file", required=True)
    trust_pickle: bool = _f(False, "allow loading a whole pickled model (.pth): only for files you trust")


@dataclass(frozen=True)
class EvalConfig(LoadConfig):
    data_dir: str | None = _f(None, "folder with the IDX files (default: the folder the model was trained on, "
                                    "as recorded in its config.json, else data/)", no_default_help=True)
    split: Literal["test", "train"] = _f("test", "which split to evaluate (only its two files are read or fetched)")
    batch_size: int = _f(1000, "images per batch")
    download: bool = _f(True, "download the split's files when they are not in --data-dir")
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    device: str = shared_option("device", "auto")
    threads: int = shared_option("threads", 0)
    report: str | None = _f(None, "also write confusion.png, per_class.csv and report.md into this folder",
                            metavar="DIR")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.threads < 0:
            raise UserError("--threads must not be negative")
