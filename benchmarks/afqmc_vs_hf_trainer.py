"""`afqmc train` vs Hugging Face `Trainer` on the same job, side by side, alternating.

    pip install accelerate   # the baseline needs it; pairtrain does not
    python benchmarks/afqmc_vs_hf_trainer.py [--rounds 3] [--steps 150] [--batch-size 32] [--precision auto]

Both sides train the same 4x256 BERT (../shared/baselines/make_small_bert.py) on AFQMC's training
file for the same optimizer steps at the same batch size, precision, learning rate (1e-4, linear
decay, no warm-up) and length-grouped batching, then evaluate dev once at batch 64. HF Trainer is
../shared/baselines/hf_trainer_pairs.py as distributed. Per round it prints each side's train
samples/s, eval pairs/s and whole-process seconds; at the end the medians and their ratios.
`--precision auto` is bf16 where this CPU has AVX512-BF16/AMX (or on a GPU), else fp32: bf16 emulated
on an older CPU is slower than fp32 for both sides and measures nothing a user would run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import REPO, need_reference, small_bert, timed

TARGETS = {"train": 2.0, "eval": 2.0, "process": 1.5}


def resolve_precision(asked: str, device: str) -> str:
    """``auto``: bf16 where ``afqmc train --precision auto`` would take it on ``device``, else fp32."""
    if asked != "auto":
        return asked
    import torch

    from shared.runtime import bf16_is_fast

    return "bf16" if bf16_is_fast(torch.device(device)) else "fp32"


def hf_script(script: Path, device: str, work: Path) -> Path:
    """The baseline as distributed (it pins ``use_cpu=True``), or on a GPU a copy that lets Trainer take it."""
    if device == "cpu":
        return script
    gpu = work / "hf_trainer_pairs_gpu.py"
    gpu.write_text(script.read_text().replace("use_cpu=True", "use_cpu=False"))
    return gpu


def run_hf(script: Path, data: Path, bert: Path, args, precision: str, work: Path) -> dict[str, float]:
    seconds, out = timed([sys.executable, str(script), str(data / "train.json"), str(data / "dev.json"), str(bert),
                          str(args.steps), str(args.batch_size), precision, str(args.lr)], cwd=work)
    result = json.loads(out.strip().splitlines()[-1])
    return {"train": result["train_samples_per_second"], "eval": result["eval_samples_per_second"],
            "process": seconds, "accuracy": result["dev_accuracy"]}


def run_ours(data: Path, bert: Path, args, precision: str, out_dir: Path) -> dict[str, float]:
    seconds, _ = timed([sys.executable, "-m", "afqmc", "train", "--train-file", str(data / "train.json"),
                        "--dev-file", str(data / "dev.json"), "--model", str(bert), "--epochs", "1",
                        "--max-steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                        "--warmup-ratio", "0", "--weight-decay", "0", "--group-by-length",
                        "--eval-batch-size", "64", "--precision", precision, "--device", args.device,
                        "--out", str(out_dir), "--quiet", *args.ours.split()], cwd=REPO)
    last = json.loads((out_dir / "metrics.json").read_text())["history"][-1]
    return {"train": last["train_samples_per_second"], "eval": last["dev_examples_per_second"],
            "process": seconds, "accuracy": last["dev_accuracy"]}


def report(rows: dict[str, list[dict[str, float]]], args, precision: str) -> None:
    print(f"\n{args.steps} steps, batch {args.batch_size}, {precision} on {args.device}, "
          f"median of {args.rounds} rounds:")
    print(f"{'':<22}{'HF Trainer':>12}{'afqmc train':>13}{'ratio':>8}{'target':>9}")
    names = {"train": "train samples/s", "eval": "eval pairs/s", "process": "whole process s"}
    for key, name in names.items():
        hf, ours = (statistics.median(r[key] for r in rows[side]) for side in ("hf", "ours"))
        ratio = hf / ours if key == "process" else ours / hf
        print(f"{name:<22}{hf:>12.1f}{ours:>13.1f}{ratio:>7.2f}x{TARGETS[key]:>8.1f}x")
    for side in ("hf", "ours"):
        print(f"dev accuracy {side}: " + ", ".join(f"{100 * r['accuracy']:.2f}%" for r in rows[side]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (HF first, then ours) (default: 3)")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps on both sides (default: 150)")
    ap.add_argument("--batch-size", type=int, default=32, help="training batch on both sides (default: 32)")
    ap.add_argument("--lr", type=float, default=1e-4, help="learning rate on both sides (default: 1e-4)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="both sides' precision; auto: bf16 where it is fast, else fp32 (default: auto)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="both sides' device; cuda runs HF Trainer from a copy without use_cpu=True (default: cpu)")
    ap.add_argument("--ours", default="", help="extra `afqmc train` options, e.g. '--threads 2'")
    args = ap.parse_args()
    data = need_reference("data", "afqmc")
    script = need_reference("baselines", "hf_trainer_pairs.py")
    try:
        import accelerate  # noqa: F401  (the baseline's Trainer needs it)
    except ImportError:
        raise SystemExit("HF Trainer needs accelerate: pip install accelerate (benchmark only)") from None
    precision = resolve_precision(args.precision, args.device)
    work = Path(tempfile.mkdtemp(prefix="hf-bench-"))
    script = hf_script(script, args.device, work)
    bert = small_bert(data / "train.json", work / "small-bert")
    rows: dict[str, list[dict[str, float]]] = {"hf": [], "ours": []}
    for i in range(args.rounds):
        rows["hf"].append(run_hf(script, data, bert, args, precision, work))
        rows["ours"].append(run_ours(data, bert, args, precision, work / f"ours-{i}"))
        print(f"round {i + 1}: " + "; ".join(
            f"{side} {r['train']:.1f} train/s, {r['eval']:.1f} eval/s, {r['process']:.1f} s"
            for side, r in ((s, rows[s][-1]) for s in rows)), flush=True)
    report(rows, args, precision)


if __name__ == "__main__":
    main()
