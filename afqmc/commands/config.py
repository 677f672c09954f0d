"""The `afqmc train` configuration: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from afqmc.model.settings import InferenceSettings
from afqmc.data.sources import PairFile
from shared.config import RUN_OPTIONS_MAY_DIFFER, RunOptions, option, raise_problems, shared_option
from shared.errors import UserError


_f = option
# Scratch models on a few thousand pairs can peak long before an epoch ends (measured on held-out
# sets: see benchmarks/heldout_recipe.py); evaluating every 50 steps lets best/ keep that point.
SCRATCH_EVAL_EVERY_STEPS = 50


# The main job without files: AFQMC from the hub (34,334 training pairs; its 4,316 validation pairs as dev).
AFQMC_TRAIN, AFQMC_DEV = "hf:clue/clue:afqmc@train", "hf:clue/clue:afqmc@validation"


@dataclass(frozen=True)
class TrainConfig(RunOptions):
    out: str = shared_option("out", "runs/afqmc")
    epochs: int = shared_option("epochs", 3)
    select_by: Literal["auto", "accuracy", "macro_f1", "loss", "pearson", "spearman"] = _f(
        "auto", "the evaluation metric that picks best/ and that --patience watches: accuracy, macro_f1, loss "
                "(lower is better), or for --task regression pearson, spearman; auto: accuracy, or pearson for a "
                "regression")
    eval_every_steps: int | None = _f(
        None, "also evaluate every N optimizer steps inside epochs (0: at epoch ends only; default: 50 for "
              "--model scratch, whose best point on a few thousand pairs often comes early, else 0); every "
              "evaluation may become best/ and counts for --patience", no_default_help=True)
    train_file: str = _f(AFQMC_TRAIN, "training pairs: .jsonl/.json, .tsv/.txt, .csv, .parquet, a `datasets` "
                                      "save_to_disk directory (DIR[@SPLIT]) or hf:NAME[:CONFIG][@SPLIT] (default: "
                                      "AFQMC itself from the hub, cached by datasets)", data=True)
    dev_file: str = _f(AFQMC_DEV, "dev pairs (same formats), evaluated after every epoch (default: AFQMC's "
                                  "validation split from the hub)", data=True)
    text_columns: str | None = _f(None, "the two text columns, e.g. question1,question2, or field numbers of a "
                                        "headerless TSV/CSV, e.g. 2,3 (default: detect sentence1/sentence2, "
                                        "text_a/text_b, premise/hypothesis, ...)", metavar="A,B")
    label_column: str | None = _f(None, "the label column, or its field number (default: detect label, labels, "
                                        "gold_label; a headerless file's third field)", metavar="L")
    model: str = _f("bert-base-chinese",
                    "hub name or local directory of a BERT checkpoint, or 'scratch' (offline: char "
                    "tokenizer from --train-file + a new small BERT)")
    scratch_size: Literal["tiny", "small", "base"] = _f(
        "small", "--model scratch size: tiny 128x2, small 256x4, base 768x12 (hidden x layers)")
    vocab_size: int = _f(8000, "--model scratch: WordPiece vocabulary size")
    match_types: bool = _f(True, "--model scratch: token types also mark characters that occur in both "
                                 "sentences (an exact-match feature; the model learns far faster from it)")
    task: Literal["auto", "classification", "regression"] = _f(
        "auto", "classification (one label per pair) or regression (a similarity score per pair, as STS-B's "
                "0-5: one output, MSE, Pearson/Spearman); auto: regression when every training label is a number "
                "and they are not few whole numbers (a fraction, or more than 10 distinct values)")
    mlm_epochs: int = _f(0, "masked-LM warm-up epochs on the training text before fine-tuning (0: none)")
    labels: str = _f("", "comma-separated label values in class-index order (default: those of the training "
                         "data, numbers in numeric order, then names alphabetically)", no_default_help=True)
    label_names: str = _f("", "comma-separated names shown for the labels in --labels order (tables, "
                              "confusion.png, metrics.json classes), saved with the model, e.g. 'different,same "
                              "meaning' for AFQMC's 0,1 (default: the labels as the data writes them)",
                          no_default_help=True)
    class_weights: str = _f("none", "weights of the labels in the training loss, for imbalanced data: none, "
                                    "balanced (n / (labels x count)), or w1,w2,... in --labels order")
    batch_size: int | None = _f(None, "pairs per batch (per process); global batch = this x accum-steps x "
                                      "processes (default: 16 for a pretrained model, 32 for scratch)",
                                no_default_help=True)
    lr: float | None = _f(None, "peak learning rate (default: 5e-4 for scratch; for a pretrained model 5e-5 x 768 / "
                                "its hidden size, within 2e-5..1e-4: 5e-5 for bert-base, 1e-4 for a 384-wide "
                                "model such as multilingual-e5-small); "
                                "the value used is recorded in metrics.json and report.md", no_default_help=True)
    warmup_ratio: float = _f(0.1, "fraction of steps of linear warm-up before the linear decay")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    max_grad_norm: float = _f(1.0, "clip gradients to this norm (0: no clipping)")
    accum_steps: int = _f(1, "batches accumulated per optimizer step")
    max_length: int = _f(128, "truncate pairs to this many tokens")
    group_by_length: bool = _f(True, "batch pairs of similar length together (less padding)")
    streaming: bool = _f(False, "stream --train-file instead of loading it (files larger than memory)")
    shuffle_buffer: int = _f(10000, "--streaming: records mixed in memory per DataLoader worker")
    num_workers: int = _f(0, "--streaming: DataLoader worker processes reading and tokenising the file")
    eval_batch_size: int = _f(64, "pairs per batch when evaluating (length-sorted)")
    skip_bad_lines: bool = _f(False, "skip (and count) malformed lines instead of stopping")
    tune_threshold: bool = _f(False, "binary labels: choose the decision threshold on P(second label) that "
                                     "maximises --select-by on dev (accuracy for loss); saved with best/ and "
                                     "used by eval, predict and --pair")

    def __post_init__(self) -> None:
        # Model-dependent defaults are resolved once here, so that what is recorded is what was used.
        # Pretrained defaults (measured with multilingual-e5-small on held-out splits of the visible sets,
        # benchmarks/pretrained_recipe.py): lr 2e-5 at batch 32 left a few hundred pairs' worth of steps
        # too few to move the model off the majority class; batch 16 doubles the steps. A pretrained
        # model's lr depends on its width and is resolved once its config is read (pretrained_lr).
        if self.lr is None and self.model == "scratch":
            object.__setattr__(self, "lr", 5e-4)
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", 32 if self.model == "scratch" else 16)
        if self.select_by == "auto" and self.task != "auto":  # else resolved with the task (resolve_task)
            object.__setattr__(self, "select_by", "pearson" if self.task == "regression" else "accuracy")
        if self.eval_every_steps is None:
            object.__setattr__(self, "eval_every_steps", SCRATCH_EVAL_EVERY_STEPS if self.model == "scratch" else 0)
        problems = self.run_option_problems()
        problems += [f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})"
                     for name in ("batch_size", "accum_steps", "max_length", "eval_batch_size", "vocab_size",
                                  "shuffle_buffer") if getattr(self, name) < 1]
        problems += [f"--{name.replace('_', '-')} must not be negative"
                     for name in ("weight_decay", "max_grad_norm", "mlm_epochs", "num_workers")
                     if getattr(self, name) < 0]
        if self.lr is not None and not self.lr > 0:
            problems.append(f"--lr must be positive (got {self.lr})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"--warmup-ratio must be in [0, 1) (got {self.warmup_ratio})")
        labels = self.label_list or ()
        if self.labels and (len(labels) < 2 or len(set(labels)) != len(labels)):
            problems.append(f"--labels {self.labels!r}: need at least two distinct comma-separated values")
        names = self.label_name_list or ()
        if names and (not all(names) or len(set(names)) != len(names)):
            problems.append(f"--label-names {self.label_names!r}: need distinct non-empty comma-separated names")
        elif names and labels and len(names) != len(labels):
            problems.append(f"--label-names: {len(names)} names for the {len(labels)} labels of --labels")
        if self.task == "regression":
            problems += [f"--{flag} is for classification, not --task regression" for flag, given in (
                ("labels", self.labels), ("label-names", self.label_names), ("tune-threshold", self.tune_threshold),
                ("class-weights", self.class_weights != "none")) if given]
            if self.select_by in ("accuracy", "macro_f1"):
                problems.append(f"--select-by {self.select_by} is for classification; a regression run selects "
                                "by pearson, spearman or loss")
        if self.task == "classification" and self.select_by in ("pearson", "spearman"):
            problems.append(f"--select-by {self.select_by} is for --task regression")
        if self.tune_threshold and self.labels and len(labels) != 2:
            problems.append("--tune-threshold needs exactly two labels")
        if self.class_weights not in ("none", "balanced"):
            try:
                weights = [float(w) for w in self.class_weights.split(",")]
            except ValueError:
                weights = []
            if not weights or not all(w > 0 for w in weights) or labels and len(weights) != len(labels):
                problems.append(f"--class-weights {self.class_weights!r}: use none, balanced, or positive "
                                "comma-separated numbers, one per label")
        if self.streaming and self.mlm_epochs:
            problems.append("--mlm-epochs needs the training text in memory; it cannot be combined with --streaming")
        problems += column_problems(self.text_columns, self.label_column)
        raise_problems(problems)

    @property
    def label_name_list(self) -> tuple[str, ...] | None:
        """``--label-names`` as a tuple; None: show the labels themselves."""
        return tuple(x.strip() for x in self.label_names.split(",")) if self.label_names.strip() else None

    @property
    def label_list(self) -> tuple[str, ...] | None:
        """``--labels`` as a tuple; None: collect them from the training data."""
        return tuple(x.strip() for x in self.labels.split(",") if x.strip()) or None

    def pair_file(self, spec: str) -> PairFile:
        return PairFile(spec, text_column_pair(self.text_columns), self.label_column)


def pretrained_lr(hidden_size: int) -> float:
    """The default peak lr of a pretrained encoder ``hidden_size`` wide: 5e-5 x 768 / width, within 2e-5..1e-4.

    Adam's effective step on a hidden weight grows with the width, so narrower models take larger rates
    (the usual practice: 2e-5..5e-5 for BERT-base, 1e-4 for MiniLM/E5-small sized models). Measured on
    multilingual-e5-small (384 wide), 1000 training pairs of each of five visible sets, seed 1: 1e-4 beat
    5e-5 on the dev split in 3 of 5 sets (tied on one) and on the held-out split in 4 of 5
    (docs/results.md, "Pretrained recipe"). BERT-base keeps the 5e-5 it had."""
    return min(1e-4, max(2e-5, 5e-5 * 768 / hidden_size))


def text_column_pair(text_columns: str | None) -> tuple[str, str] | None:
    return tuple(c.strip() for c in text_columns.split(",")) if text_columns else None  # type: ignore[return-value]


def column_problems(text_columns: str | None, label_column: str | None) -> list[str]:
    problems = []
    if text_columns is not None:
        names = [c.strip() for c in text_columns.split(",")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            problems.append(f"--text-columns {text_columns!r}: expected two different column names (or field "
                            "numbers) separated by a comma, e.g. question1,question2")
    if label_column is not None and not label_column.strip():
        problems.append("--label-column must not be empty")
    return problems


RESUME_MAY_DIFFER = (*RUN_OPTIONS_MAY_DIFFER, "eval_batch_size", "skip_bad_lines", "train_file", "dev_file",
                     "text_columns", "label_column", "label_names")


@dataclass(frozen=True)
class ScorerOptions:
    """How a saved model is loaded and run (``afqmc eval``, ``predict`` and ``serve``)."""

    model_dir: str = _f("", "a model directory, e.g. runs/afqmc/best", required=True)
    batch_size: int = _f(64, "pairs per batch (batches are length-sorted)")
    max_length: int | None = _f(None, "truncate pairs to this many tokens (default: the value the model was "
                                      "trained with, saved in its config.json; 128 for models saved before it was)",
                                no_default_help=True)
    device: str = shared_option("device", "auto")
    threads: int = shared_option("threads", 0)
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    backend: Literal["torch", "onnx"] = _f("torch", "torch, or onnx: the model's ONNX export run by ONNX Runtime "
                                                    "on CPU (afqmc export writes it; pip install 'pairtrain[onnx]')")
    int8: bool = _f(False, "--backend onnx: the dynamically quantised int8 model (afqmc export --int8)")

    def scorer_problems(self) -> list[str]:
        too_small = self.batch_size < 1 or (self.max_length is not None and self.max_length < 1)
        problems = ["--batch-size and --max-length must be at least 1"] if too_small else []
        problems += ["--int8 needs --backend onnx"] if self.int8 and self.backend != "onnx" else []
        return problems + (["--threads must not be negative"] if self.threads < 0 else [])


@dataclass(frozen=True)
class InferConfig(ScorerOptions):
    """Options of ``afqmc eval`` and ``afqmc predict``."""

    skip_bad_lines: bool = _f(False, "skip (and count) malformed lines instead of stopping")
    text_columns: str | None = _f(None, "the two text columns of --file, or field numbers of a headerless "
                                        "TSV/CSV (default: those training was given, saved with the model, "
                                        "else detect)", metavar="A,B")
    label_column: str | None = _f(None, "the label column of --file, or its field number (default: the one "
                                        "training was given, else detect)", metavar="L")

    def __post_init__(self) -> None:
        raise_problems(self.scorer_problems() + column_problems(self.text_columns, self.label_column))

    def pair_file(self, spec: str, saved: InferenceSettings, need_label: bool) -> PairFile:
        """``spec`` with the columns given here, else those the model was trained with. Unlabelled files
        (predict) take no saved label column: a file to label need not have one."""
        label = self.label_column or (saved.label_column if need_label else None)
        return PairFile(spec, text_column_pair(self.text_columns) or saved.text_columns, label)


@dataclass(frozen=True)
class EvalConfig(InferConfig):
    file: str = _f("", "labelled pair file (any format train reads)", required=True)
    report: str | None = _f(None, "also write confusion.png, per_class.csv and report.md into this folder",
                            metavar="DIR")


@dataclass(frozen=True)
class PredictConfig(InferConfig):
    file: str | None = _f(None, "pair file to label (any format train reads; labels optional); needs --output")
    pair: str | None = _f(None, "one sentence pair to label (instead of --file)", nargs=2,
                          metavar=("SENTENCE1", "SENTENCE2"))
    output: str | None = _f(None, "with --file (required there): where to write one prediction per input "
                                  "pair, format by extension: .json CLUE's {\"id\", \"label\"} lines; .jsonl "
                                  "adds each label's probability; .csv / .tsv the same as columns",
                            metavar="OUT")

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.file is None) == (self.pair is None):
            raise UserError("predict needs exactly one of --file FILE (with --output OUT) or --pair S1 S2")
        if self.file is not None and not self.output:
            raise UserError("predict --file needs --output OUT (.json, .jsonl, .csv or .tsv: where to write the "
                            "predictions)")


@dataclass(frozen=True)
class ServeConfig(ScorerOptions):
    """Options of ``afqmc serve``."""

    batch_size: int = _f(16, "pairs per forward pass within a micro-batch (length-sorted); measured on CPU, 16 "
                             "scored a batch of 32 mixed requests 25% faster than 64, which pads more")
    host: str = _f("127.0.0.1", "address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)")
    port: int = _f(8000, "TCP port (0: any free port, printed at start-up)")
    max_batch_size: int = _f(64, "micro-batching: run up to this many queued pairs together")
    max_wait_ms: float = _f(5.0, "micro-batching: while clients are concurrent, wait at most this long for more "
                                 "requests to join a batch (a lone client never waits)")
    max_queue: int = _f(256, "requests waiting at most; more are answered 503 (busy) instead of queueing")
    max_pairs: int = _f(256, "pairs per request at most")
    max_body_kb: int = _f(1024, "request body size limit in KiB (413 above it)")

    def __post_init__(self) -> None:
        problems = self.scorer_problems()
        problems += [f"--{name.replace('_', '-')} must be at least 1" for name in
                     ("max_batch_size", "max_queue", "max_pairs", "max_body_kb") if getattr(self, name) < 1]
        if not 0 <= self.port <= 65535:
            problems.append(f"--port must be in 0..65535 (got {self.port})")
        if self.max_wait_ms < 0:
            problems.append("--max-wait-ms must not be negative")
        raise_problems(problems)


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``afqmc export``."""

    model_dir: str = _f("", "the model directory to add an ONNX model to, e.g. runs/afqmc/best", required=True)
    int8: bool = _f(False, "also write the dynamically quantised int8 model (ONNX Runtime's quantize_dynamic)")
    threads: int = shared_option("threads", 0)
