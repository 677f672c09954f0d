"""`afqmc` command line: train, eval, predict, serve."""

from __future__ import annotations

import argparse
from typing import Sequence

from shared.collector import collector_paused


def build_parser() -> argparse.ArgumentParser:
    from shared.config import add_dataclass_args
    from afqmc.config import EvalConfig, PredictConfig, ServeConfig, TrainConfig

    parser = argparse.ArgumentParser(prog="afqmc", description="Sentence-pair similarity with a BERT encoder")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cfg, text in (
            ("train", TrainConfig, "fine-tune (or train from scratch) and write a run directory"),
            ("eval", EvalConfig, "accuracy, macro-F1, per-class report, confusion matrix"),
            ("predict", PredictConfig, "label a file (--file, CLUE format, with --output) or one pair (--pair)"),
            ("serve", ServeConfig, "serve a model over HTTP (POST /predict, GET /health, a page at /), "
                                   "micro-batching concurrent requests")):
        command = sub.add_parser(name, help=text, description=text)
        add_dataclass_args(command, cfg)
        command.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return parser


def _main(argv: Sequence[str]) -> int:
    with collector_paused():  # mostly imports: torch, transformers (shared.collector)
        from afqmc.config import EvalConfig, PredictConfig, ServeConfig, TrainConfig
        from shared.config import from_args
        from shared.rundir import log, setup_logging

        args = build_parser().parse_args(argv)
        commands = {"train": TrainConfig, "eval": EvalConfig, "predict": PredictConfig, "serve": ServeConfig}
        cfg = from_args(commands[args.command], args)
        if args.command == "train":
            from afqmc.train import main as train_main
        else:
            from afqmc import infer
            from shared.runtime import set_threads
    if args.command == "train":
        train_main(cfg)
        return 0
    setup_logging()
    if hasattr(cfg, "threads") and (note := set_threads(cfg.threads, adapt=True)):
        log.info(note)
    if args.command == "serve":
        from afqmc.serve import run_serve

        run_serve(cfg)
    elif args.command == "eval":
        infer.run_eval(cfg)
    elif cfg.pair:
        infer.run_predict_pair(cfg)
    else:
        infer.run_predict_file(cfg)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    with collector_paused():
        from shared.rundir import run_cli
    return run_cli(_main, argv, "afqmc")
