"""`fashion` command line: train, eval, predict, export."""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

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
    pr.add_argument("--invert", nargs="?", const="yes", default="auto", choices=("auto", "yes", "no"),
                    help="negate pixel values as Fashion-MNIST's photos were: auto decides per image (a light "
                         "or transparent background: yes), and says what it decided; .npy arrays only when "
                         "yes; a bare --invert is yes (default: auto)")
    pr.add_argument("--output", metavar="OUT",
                    help="also write the predictions (every class's probability) to OUT: .jsonl, .json, "
                         ".csv or .tsv by extension (optional)")
    pr.add_argument("--grid", metavar="PNG",
                    help="also draw the images with their top class and probability into this PNG (optional)")
    ex = command("export", LoadConfig, "save the whole model with torch.save(model) (the tutorial's way). "
                 "The saved module takes pixels in [0, 1] as ToTensor() gives them, shape (N, 1, 28, 28) or "
                 "(N, 28, 28), and standardises them itself; it returns logits of the 10 classes")
    ex.add_argument("--output", required=True, help="file to write, e.g. model.pth (required)")
    return parser


def _prepare(argv: Sequence[str]) -> Callable[[], object]:
    """Parse ``argv`` and import what the command needs (run_cli pauses the garbage collector for this)."""
    from fashion.config import EvalConfig, LoadConfig, TrainConfig
    from shared.config import from_args
    from shared.rundir import run_inference

    args = build_parser().parse_args(argv)
    cfg = from_args({"train": TrainConfig, "eval": EvalConfig}.get(args.command, LoadConfig), args)
    if args.command == "train":
        from fashion.train import main as train_main

        return lambda: train_main(cfg)
    from fashion import infer

    if args.command == "eval":
        return lambda: run_inference(cfg, infer.run_eval)
    if args.command == "predict":
        return lambda: run_inference(cfg, lambda c: infer.run_predict(c.model_dir, args.files, c.trust_pickle,
                                                                      args.invert, args.grid,
                                                                      args.output))
    return lambda: run_inference(cfg, lambda c: infer.run_export(c.model_dir, args.output))


def main(argv: Sequence[str] | None = None) -> int:
    with collector_paused():  # shared.rundir brings torch (shared.collector)
        from shared.rundir import run_cli
    return run_cli(_prepare, argv, "fashion")
