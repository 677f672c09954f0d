"""The `afqmc train` configuration: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from afqmc.model import SCRATCH_SIZES
from shared.config import option, shared_option
from shared.errors import UserError


_f = option


@dataclass(frozen=True)
class TrainConfig:
    train_file: str = _f("", "training JSON Lines file (sentence1, sentence2, label)", required=True)
    dev_file: str = _f("", "dev JSON Lines file, evaluated after every epoch", required=True)
    model: str = _f("bert-base-chinese",
                    "hub name or local directory of a BERT checkpoint, or 'scratch' (offline: char "
                    "tokenizer from --train-file + a new small BERT)")
    scratch_size: Literal["tiny", "small", "base"] = _f(
        "small", "--model scratch size: tiny 128x2, small 256x4, base 768x12 (hidden x layers)")
    vocab_size: int = _f(8000, "--model scratch: WordPiece vocabulary size")
    match_types: bool = _f(True, "--model scratch: token types also mark characters that occur in both "
                                 "sentences (an exact-match feature; the model learns far faster from it)")
    mlm_epochs: int = _f(0, "masked-LM warm-up epochs on the training text before fine-tuning (0: none)")
    labels: str = _f("0,1", "comma-separated label values, in class-index order")
    class_weights: str = _f("none", "weights of the labels in the training loss, for imbalanced data: none, "
                                    "balanced (n / (labels x count)), or w1,w2,... in --labels order")
    epochs: int = shared_option("epochs", 3)
    batch_size: int = _f(32, "pairs per batch (per process); global batch = this x accum-steps x processes")
    lr: float | None = _f(None, "peak learning rate (default: 2e-5 for a pretrained model, 5e-4 for scratch); "
                                "the value used is recorded in metrics.json and report.md", no_default_help=True)
    warmup_ratio: float = _f(0.1, "fraction of steps of linear warm-up before the linear decay")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    max_grad_norm: float = _f(1.0, "clip gradients to this norm (0: no clipping)")
    accum_steps: int = _f(1, "batches accumulated per optimizer step")
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    max_length: int = _f(128, "truncate pairs to this many tokens")
    group_by_length: bool = _f(True, "batch pairs of similar length together (less padding)")
    streaming: bool = _f(False, "stream --train-file instead of loading it (files larger than memory)")
    shuffle_buffer: int = _f(10000, "--streaming: records mixed in memory per DataLoader worker")
    num_workers: int = _f(0, "--streaming: DataLoader worker processes reading and tokenising the file")
    eval_batch_size: int = _f(64, "pairs per batch when evaluating (length-sorted)")
    skip_bad_lines: bool = _f(False, "skip (and count) malformed lines instead of stopping")
    out: str = shared_option("out", "runs/afqmc")
    seed: int = shared_option("seed", 42)
    resume: bool = shared_option("resume", False)
    save_every_steps: int = shared_option("save_every_steps", 0)
    max_steps: int = shared_option("max_steps", 0)
    device: str = shared_option("device", "auto")
    threads: int = shared_option("threads", 0)
    log_interval: int = shared_option("log_interval", 100)
    quiet: bool = shared_option("quiet", False)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accum_steps", "max_length", "eval_batch_size", "vocab_size",
                     "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        for name in ("save_every_steps", "max_steps", "log_interval", "weight_decay", "max_grad_norm", "mlm_epochs",
                     "num_workers", "threads"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must not be negative")
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"--lr must be positive (got {self.lr})")
        if self.lr is None:  # resolved once here, so that what is recorded is the rate actually used
            object.__setattr__(self, "lr", 5e-4 if self.model == "scratch" else 2e-5)
        if not 0 <= self.warmup_ratio < 1:
            raise UserError(f"--warmup-ratio must be in [0, 1) (got {self.warmup_ratio})")
        if len(self.label_list) < 2 or len(set(self.label_list)) != len(self.label_list):
            raise UserError(f"--labels {self.labels!r}: need at least two distinct comma-separated values")
        if self.class_weights not in ("none", "balanced"):
            try:
                weights = [float(w) for w in self.class_weights.split(",")]
            except ValueError:
                weights = []
            if len(weights) != len(self.label_list) or not all(w > 0 for w in weights):
                raise UserError(f"--class-weights {self.class_weights!r}: use none, balanced, or "
                                f"{len(self.label_list)} positive comma-separated numbers (one per label)")
        if self.streaming and self.mlm_epochs:
            raise UserError("--mlm-epochs needs the training text in memory; it cannot be combined with --streaming")
        if self.scratch_size not in SCRATCH_SIZES:
            raise UserError(f"--scratch-size must be one of {', '.join(SCRATCH_SIZES)}")

    @property
    def label_list(self) -> tuple[str, ...]:
        return tuple(x.strip() for x in self.labels.split(",") if x.strip())

    @property
    def learning_rate(self) -> float:
        return float(self.lr)


RESUME_MAY_DIFFER = ("out", "resume", "device", "threads", "quiet", "log_interval", "save_every_steps",
                     "eval_batch_size", "skip_bad_lines", "train_file", "dev_file")


@dataclass(frozen=True)
class InferConfig:
    """Options of ``afqmc eval`` and ``afqmc predict``."""

    model_dir: str = _f("", "a model directory, e.g. runs/afqmc/best", required=True)
    batch_size: int = _f(64, "pairs per batch (batches are length-sorted)")
    max_length: int = _f(128, "truncate pairs to this many tokens (use the value the model was trained with)")
    device: str = shared_option("device", "auto")
    threads: int = shared_option("threads", 0)
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    skip_bad_lines: bool = _f(False, "skip (and count) malformed lines instead of stopping")

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_length < 1:
            raise UserError("--batch-size and --max-length must be at least 1")
        if self.threads < 0:
            raise UserError("--threads must not be negative")


@dataclass(frozen=True)
class EvalConfig(InferConfig):
    file: str = _f("", "labelled pair file (JSON Lines)", required=True)
    report: str | None = _f(None, "also write confusion.png, per_class.csv and report.md into this folder",
                            metavar="DIR")


@dataclass(frozen=True)
class PredictConfig(InferConfig):
    file: str | None = _f(None, "pair file to label (labels optional); needs --output")
    pair: str | None = _f(None, "one sentence pair to label (instead of --file)", nargs=2,
                          metavar=("SENTENCE1", "SENTENCE2"))
    output: str | None = _f(None, "with --file (required there): where to write one {\"id\", \"label\"} JSON "
                                  "per input line, CLUE style", metavar="OUT.json")

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.file is None) == (self.pair is None):
            raise UserError("predict needs exactly one of --file FILE (with --output OUT.json) or --pair S1 S2")
        if self.file is not None and not self.output:
            raise UserError("predict --file needs --output OUT.json (where to write the predictions)")
