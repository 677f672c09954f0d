"""`afqmc` command line: train, eval, predict."""

from __future__ import annotations

import argparse
from typing import Sequence

from shared.config import add_dataclass_args, from_args
from shared.errors import UserError
from shared.rundir import run_cli, setup_logging


def build_parser() -> argparse.ArgumentParser:
    from afqmc.config import TrainConfig

    parser = argparse.ArgumentParser(prog="afqmc", description="Sentence-pair similarity with a BERT encoder")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="fine-tune (or train from scratch) and write a run directory")
    add_dataclass_args(train, TrainConfig)
    train.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-dir", required=True, help="a model directory, e.g. runs/afqmc/best")
    common.add_argument("--batch-size", type=int, default=64)
    common.add_argument("--max-length", type=int, default=128)
    common.add_argument("--device", default="auto")
    common.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="auto: bf16 weights where bf16 is fast (as training's dev evaluation), else fp32")
    common.add_argument("--skip-bad-lines", action="store_true")
    common.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    ev = sub.add_parser("eval", parents=[common], help="accuracy, macro-F1, per-class report, confusion matrix")
    ev.add_argument("--file", required=True, help="labelled JSON Lines file")
    ev.add_argument("--report", metavar="DIR", help="also write confusion.png, per_class.csv, report.md here")

    pr = sub.add_parser("predict", parents=[common], help="label a file (CLUE format) or one pair")
    what = pr.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", help="JSON Lines file (labels optional)")
    what.add_argument("--pair", nargs=2, metavar=("SENTENCE1", "SENTENCE2"), help="one sentence pair")
    pr.add_argument("--output", help="with --file: where to write one {\"id\", \"label\"} JSON per line")
    return parser


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from afqmc.config import TrainConfig
        from afqmc.train import main as train_main

        train_main(from_args(TrainConfig, args))
        return 0
    from afqmc import infer

    setup_logging()
    if args.batch_size < 1 or args.max_length < 1:
        raise UserError("--batch-size and --max-length must be at least 1")
    if args.command == "eval":
        infer.run_eval(args.model_dir, args.file, args.batch_size, args.max_length, args.device,
                       args.skip_bad_lines, args.precision, args.report)
    elif args.pair:
        infer.run_predict_pair(args.model_dir, args.pair[0], args.pair[1], args.max_length, args.device,
                               args.precision)
    else:
        if not args.output:
            raise UserError("predict --file needs --output OUT.json")
        infer.run_predict_file(args.model_dir, args.file, args.output, args.batch_size, args.max_length,
                               args.device, args.skip_bad_lines, args.precision)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, "afqmc")
