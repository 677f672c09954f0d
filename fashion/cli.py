"""`fashion` command line: train, eval, predict, export."""

from __future__ import annotations

import argparse
from typing import Sequence

from shared.collector import collector_paused


def build_parser() -> argparse.ArgumentParser:
    from shared.config import add_dataclass_args
    from fashion.config import EvalConfig, LoadConfig, TrainConfig

    parser = argparse.ArgumentParser(prog="fashion", description="Fashion-MNIST image classifier")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, cfg: type, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        add_dataclass_args(p, cfg)
        p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
        return p

    command("train", TrainConfig, "train a model and write a run directory")
    command("eval", EvalConfig, "accuracy, per-class report, confusion matrix")
    pr = command("predict", LoadConfig, "classify PNG/JPEG images or .npy arrays")
    pr.add_argument("files", nargs="+", help="28x28 grayscale images (others are resized) or .npy arrays")
    pr.add_argument("--invert", action="store_true",
                    help="invert pixel values (for dark items on a light background) (default: off)")
    pr.add_argument("--grid", metavar="PNG",
                    help="also draw the images with their top class and probability into this PNG (optional)")
    ex = command("export", LoadConfig, "save the whole model with torch.save(model) (the tutorial's way)")
    ex.add_argument("--output", required=True, help="file to write, e.g. model.pth (required)")
    return parser


def _main(argv: Sequence[str]) -> int:
    with collector_paused():  # mostly imports: torch (shared.collector)
        from fashion.config import EvalConfig, LoadConfig, TrainConfig
        from shared.config import from_args
        from shared.rundir import log, setup_logging

        args = build_parser().parse_args(argv)
        cfg = from_args({"train": TrainConfig, "eval": EvalConfig}.get(args.command, LoadConfig), args)
        if args.command == "train":
            from fashion.train import main as train_main
        else:
            from fashion import infer
            from shared.runtime import set_threads
    if args.command == "train":
        train_main(cfg)
        return 0
    setup_logging()
    if hasattr(cfg, "threads") and (note := set_threads(cfg.threads, adapt=True)):
        log.info(note)
    if args.command == "eval":
        infer.run_eval(cfg)
    elif args.command == "predict":
        infer.run_predict(cfg.model_dir, args.files, cfg.trust_pickle, args.invert, args.grid)
    else:
        infer.run_export(cfg.model_dir, args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    with collector_paused():
        from shared.rundir import run_cli
    return run_cli(_main, argv, "fashion")
