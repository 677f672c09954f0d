"""`afqmc` command line: train, eval, predict, serve."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from shared.collector import collector_paused


def build_parser() -> argparse.ArgumentParser:
    from shared.config import add_dataclass_args
    from afqmc.commands.config import EvalConfig, ExportConfig, PredictConfig, ServeConfig, TrainConfig

    parser = argparse.ArgumentParser(prog="afqmc", description="Sentence-pair similarity with a BERT encoder")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cfg, text in (
            ("train", TrainConfig, "fine-tune (or train from scratch) and write a run directory"),
            ("eval", EvalConfig, "accuracy, macro-F1, per-class report, confusion matrix"),
            ("predict", PredictConfig, "label a file (--file, CLUE format, with --output) or one pair (--pair)"),
            ("serve", ServeConfig, "serve a model over HTTP (POST /predict, GET /health, a page at /), "
                                   "micro-batching concurrent requests"),
            ("export", ExportConfig, "add an ONNX model (--int8: and its int8 twin) to a model directory, for "
                                     "--backend onnx")):
        command = sub.add_parser(name, help=text, description=text)
        add_dataclass_args(command, cfg)
        command.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return parser


def _prepare(argv: Sequence[str]) -> Callable[[], object]:
    """Parse ``argv`` and import what the command needs (run_cli pauses the garbage collector for this)."""
    from afqmc.commands.config import EvalConfig, ExportConfig, PredictConfig, ServeConfig, TrainConfig
    from shared.config import from_args
    from shared.rundir import run_inference

    args = build_parser().parse_args(argv)
    commands = {"train": TrainConfig, "eval": EvalConfig, "predict": PredictConfig, "serve": ServeConfig,
                "export": ExportConfig}
    cfg = from_args(commands[args.command], args)
    if args.command == "train":
        from afqmc.commands.train import main as train_main

        return lambda: train_main(cfg)
    if args.command == "serve":
        from afqmc.commands.serve import run_serve

        return lambda: run_inference(cfg, run_serve)
    if args.command == "export":
        from afqmc.commands.export import run_export

        return lambda: run_inference(cfg, run_export)
    from afqmc.commands import infer

    run = infer.run_eval if args.command == "eval" else infer.run_predict_pair if cfg.pair else infer.run_predict_file
    return lambda: run_inference(cfg, run)


def main(argv: Sequence[str] | None = None) -> int:
    with collector_paused():  # shared.rundir brings torch (shared.collector)
        from shared.rundir import run_cli
    return run_cli(_prepare, argv, "afqmc")
