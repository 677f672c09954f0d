"""The `fashion train` configuration: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fashion import DEFAULT_DATA_DIR
from shared.config import RUN_OPTIONS_MAY_DIFFER, RunOptions, field_defaults, option, raise_problems, shared_option
from shared.errors import UserError


_f = option


@dataclass(frozen=True)
class TrainConfig(RunOptions):
    out: str = shared_option("out", "runs/fashion")
    epochs: int | None = shared_option("epochs", None, default_help="6; 8 for cnn")
    data_dir: str = _f(DEFAULT_DATA_DIR, "folder with the IDX files (raw or .gz); only the default is created "
                                         "for a download")
    download: bool = _f(True, "download the data set when it is not found in --data-dir")
    arch: Literal["mlp", "tutorial", "cnn"] = _f(
        "mlp", "mlp: tutorial layers, dropout on hidden layers; tutorial: the exact tutorial stack; cnn")
    batch_size: int = _f(256, "examples per optimizer step")
    lr: float = _f(4e-3, "peak learning rate (one-cycle) or the constant rate")
    schedule: Literal["onecycle", "constant"] = _f("onecycle", "learning-rate schedule (per step)")
    weight_decay: float = _f(0.01, "AdamW weight decay")
    dropout: float = _f(0.0, "dropout probability (mlp and cnn); label smoothing regularises the default")
    label_smoothing: float = _f(0.1, "cross-entropy label smoothing while training")
    hflip: float | None = _f(None, "probability of mirroring each training image left-right, drawn per image "
                                   "and epoch from --seed", default_help="0.5 for cnn, 0 otherwise")
    normalize: bool = _f(True, "standardise pixels with the training set's mean/std")
    shuffle: bool = _f(True, "reshuffle the training set every epoch (the tutorial does not)")
    loader: Literal["tensor", "iterable"] = _f(
        "tensor", "tensor: batches sliced from memory; iterable: IterableDataset + DataLoader workers")
    num_workers: int = _f(0, "DataLoader worker processes for --loader iterable")
    val_size: float = _f(0.1, "validation images held out of the training set (seeded by --seed) to select best/ "
                              "and for --patience: a fraction below 1 or a count; 0: none, best/ is then the "
                              "last model. The test set is evaluated once, on the selected model")

    def __post_init__(self) -> None:
        # Architecture-dependent defaults are resolved once here, so that what is recorded is what was used.
        cnn = self.arch == "cnn"
        if self.epochs is None:
            object.__setattr__(self, "epochs", 8 if cnn else 6)
        if self.hflip is None:
            object.__setattr__(self, "hflip", 0.5 if cnn else 0.0)
        problems = self.run_option_problems()
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1 (got {self.batch_size})")
        if not self.lr > 0:
            problems.append(f"--lr must be positive (got {self.lr})")
        if not 0 <= self.hflip <= 1:
            problems.append(f"--hflip must be in [0, 1] (got {self.hflip})")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be in [0, 1) (got {getattr(self, name)})")
        if self.val_size < 0 or (self.val_size >= 1 and not float(self.val_size).is_integer()):
            problems.append(f"--val-size must be 0, a fraction below 1 or a whole count (got {self.val_size:g})")
        if self.val_size == 0 and self.patience:
            problems.append("--patience needs a validation split to watch (--val-size above 0)")
        if self.num_workers < 0 or self.weight_decay < 0:
            problems.append("--num-workers and --weight-decay must not be negative")
        raise_problems(problems)


# Settings that may change between a run and its --resume without changing the result.
RESUME_MAY_DIFFER = (*RUN_OPTIONS_MAY_DIFFER, "max_steps", "data_dir", "download")
# What a checkpoint trained with when it predates a setting: the field's default, except where the
# default is resolved per architecture (checkpoints from before --hflip trained without flips).
PREDATING_DEFAULTS = {**field_defaults(TrainConfig), "hflip": 0.0, "val_size": 0.0}


@dataclass(frozen=True)
class LoadConfig:
    """How ``eval``, ``predict`` and ``export`` find the model."""

    model_dir: str = _f("", "a model directory (e.g. runs/fashion/best) or a whole-model .pth file", required=True)
    trust_pickle: bool = _f(False, "allow loading a whole pickled model (.pth): only for files you trust")
    threads: int = shared_option("threads", 0)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise UserError("--threads must not be negative")


@dataclass(frozen=True)
class EvalConfig(LoadConfig):
    data_dir: str | None = _f(None, "folder with the IDX files (default: the folder the model was trained on, "
                                    "as recorded in its config.json, else data/)", no_default_help=True)
    split: Literal["test", "train"] = _f("test", "which split to evaluate (only its two files are read or fetched)")
    batch_size: int = _f(1000, "images per batch")
    download: bool = _f(True, "download the split's files when they are not in --data-dir")
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    device: str = shared_option("device", "auto")
    report: str | None = _f(None, "also write confusion.png, per_class.csv and report.md into this folder",
                            metavar="DIR")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1 (got {self.batch_size})")
