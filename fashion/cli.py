"""`fashion` command line: train, eval, predict, export."""

from __future__ import annotations

import argparse
from typing import Sequence

from shared.config import add_dataclass_args, from_args
from shared.rundir import run_cli, setup_logging


def build_parser() -> argparse.ArgumentParser:
    from fashion.config import TrainConfig

    parser = argparse.ArgumentParser(prog="fashion", description="Fashion-MNIST image classifier")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model and write a run directory")
    add_dataclass_args(train, TrainConfig)
    train.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-dir", required=True,
                        help="a model directory (e.g. runs/fashion/best) or a whole-model .pth file")
    common.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a whole pickled model (.pth): only for files you trust")
    common.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    ev = sub.add_parser("eval", parents=[common], help="accuracy, per-class report, confusion matrix")
    ev.add_argument("--data-dir", default="data", help="folder with the IDX files")
    ev.add_argument("--split", choices=["test", "train"], default="test")
    ev.add_argument("--batch-size", type=int, default=1000)
    ev.add_argument("--no-download", dest="download", action="store_false")
    ev.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="as in train: auto uses bf16 autocast where it is fast")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--report", metavar="DIR", help="also write confusion.png, per_class.csv, report.md here")

    pr = sub.add_parser("predict", parents=[common], help="classify PNG/JPEG images or .npy arrays")
    pr.add_argument("files", nargs="+", help="28x28 grayscale images (others are resized) or .npy arrays")
    pr.add_argument("--invert", action="store_true",
                    help="invert pixel values (for dark items on a light background)")
    pr.add_argument("--grid", metavar="PNG", help="also draw the images with their top class and probability")

    ex = sub.add_parser("export", help="save the whole model with torch.save(model) (the tutorial's way)")
    ex.add_argument("--model-dir", required=True, help="a model directory, e.g. runs/fashion/best")
    ex.add_argument("--output", required=True, help="file to write, e.g. model.pth")
    ex.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from fashion.config import TrainConfig
        from fashion.train import main as train_main

        train_main(from_args(TrainConfig, args))
        return 0
    from fashion import infer

    setup_logging()
    if args.command == "eval":
        if args.batch_size < 1:
            from shared.errors import UserError
            raise UserError(f"--batch-size must be at least 1 (got {args.batch_size})")
        infer.run_eval(args.model_dir, args.data_dir, args.split, args.batch_size, args.trust_pickle,
                       args.download, args.precision, args.device, args.report)
    elif args.command == "predict":
        infer.run_predict(args.model_dir, args.files, args.trust_pickle, args.invert, args.grid)
    else:
        infer.run_export(args.model_dir, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, "fashion")
