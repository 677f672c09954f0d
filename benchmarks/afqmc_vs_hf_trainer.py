"""`afqmc train` vs Hugging Face `Trainer` on the same job, side by side, alternating.

    pip install accelerate   # the baseline needs it; pairtrain does not
    bash ../shared/tools/make_me5_small.sh /tmp/me5     # a real pretrained model (issue 25's job)
    python benchmarks/afqmc_vs_hf_trainer.py --model /tmp/me5 [--rounds 3] [--steps 40] [--lr 2e-5]
    python benchmarks/afqmc_vs_hf_trainer.py             # the 4x256 random BERT, 150 steps at lr 1e-4

Both sides train the same model directory on AFQMC's training file for the same optimizer steps at
the same batch size, precision, learning rate (linear decay, no warm-up, no weight decay: Trainer's
defaults) and length-grouped batching, then evaluate the first ``--dev-pairs`` of dev once at batch
64. HF Trainer is ../shared/baselines/hf_trainer_pairs.py as distributed (it saves nothing); ours
saves as it does by default (``best/``, ``last/``, a checkpoint). Per round it prints each side's
train samples/s, dev pairs/s, whole-process seconds and peak RSS; at the end the medians, ratios and
targets (issue 25), and our training FLOP/s against this machine's matrix-product peak.

``--precision auto`` gives both sides the precision that a timing of the model's own largest linear
layer says is faster here (:mod:`shared.precision`, as ``afqmc train --precision auto`` decides).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import REPO, folder_bytes, measured, need_reference, small_bert

TARGETS = {"train": 2.5, "eval": 2.0, "process": 1.5, "rss": 1.0}


def resolve_precision(asked: str, device: str, model: Path) -> str:
    """``auto``: what :func:`shared.precision.choose_precision` picks for this model's largest linear layer."""
    if asked != "auto":
        return asked
    import torch
    from transformers import AutoConfig

    sys.path.insert(0, str(REPO))
    from shared.precision import choose_precision

    config = AutoConfig.from_pretrained(model)
    hidden = config.hidden_size
    layer = torch.nn.Linear(hidden, getattr(config, "intermediate_size", 4 * hidden))
    chosen = choose_precision(torch.device(device), "auto", layer, 32 * 32)
    print(f"precision: {chosen.describe()}")
    return chosen.name


def hf_script(script: Path, device: str, work: Path) -> Path:
    """The baseline as distributed (it pins ``use_cpu=True``), or on a GPU a copy that lets Trainer take it."""
    if device == "cpu":
        return script
    gpu = work / "hf_trainer_pairs_gpu.py"
    gpu.write_text(script.read_text().replace("use_cpu=True", "use_cpu=False"))
    return gpu


def run_hf(script: Path, train: Path, dev: Path, model: Path, args, precision: str, work: Path) -> dict[str, float]:
    seconds, out, rss = measured([sys.executable, str(script), str(train), str(dev), str(model), str(args.steps),
                                  str(args.batch_size), precision, str(args.lr)], cwd=work)
    result = json.loads(out.strip().splitlines()[-1])
    return {"train": result["train_samples_per_second"], "eval": result["eval_samples_per_second"],
            "process": seconds, "rss": rss / 1e9, "accuracy": result["dev_accuracy"], "disk": 0.0}


def run_ours(train: Path, dev: Path, model: Path, args, precision: str, out_dir: Path) -> dict[str, float]:
    seconds, _, rss = measured([sys.executable, "-m", "afqmc", "train", "--train-file", str(train),
                                "--dev-file", str(dev), "--model", str(model), "--epochs", "1",
                                "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
                                "--lr", str(args.lr), "--warmup-ratio", "0", "--weight-decay", "0",
                                "--group-by-length", "--eval-batch-size", "64", "--precision", precision,
                                "--device", args.device, "--out", str(out_dir), "--quiet", *args.ours.split()],
                               cwd=REPO)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    last = metrics["history"][-1]
    return {"train": last["train_samples_per_second"], "eval": last["dev_examples_per_second"],
            "process": seconds, "rss": rss / 1e9, "accuracy": last["dev_accuracy"],
            "disk": folder_bytes(out_dir) / 1e9, "flops": last.get("train_flops_per_second", 0.0)}


def report(rows: dict[str, list[dict[str, float]]], args, precision: str) -> None:
    print(f"\n{args.model or 'the 4x256 random BERT'}: {args.steps} steps, batch {args.batch_size}, "
          f"{precision} on {args.device}, median of {args.rounds} rounds:")
    print(f"{'':<22}{'HF Trainer':>12}{'afqmc train':>13}{'ratio':>8}{'target':>9}")
    names = {"train": "train samples/s", "eval": "dev pairs/s", "process": "whole process s", "rss": "peak RSS GB"}
    for key, name in names.items():
        hf, ours = (statistics.median(r[key] for r in rows[side]) for side in ("hf", "ours"))
        ratio = ours / hf if key in ("train", "eval") else hf / ours
        print(f"{name:<22}{hf:>12.2f}{ours:>13.2f}{ratio:>7.2f}x{TARGETS[key]:>8.1f}x")
    print(f"written to disk: HF nothing; ours {statistics.median(r['disk'] for r in rows['ours']):.2f} GB")
    for side in ("hf", "ours"):
        print(f"dev accuracy {side}: " + ", ".join(f"{100 * r['accuracy']:.2f}%" for r in rows[side]))
    flops = statistics.median(r["flops"] for r in rows["ours"])
    if flops:
        print(f"ours trained at {flops / 1e9:.0f} GFLOP/s (shared.flops); `python benchmarks/matmul_peak.py` "
              "gives this machine's peak to set it against")


def first_pairs(dev: Path, n: int, work: Path) -> Path:
    """The first ``n`` lines of dev (0: all of it)."""
    if not n:
        return dev
    out = work / f"dev-first-{n}.json"
    with dev.open(encoding="utf-8") as f:
        out.write_text("".join(line for _, line in zip(range(n), f)), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None,
                    help="a model directory both sides fine-tune (default: build the 4x256 random BERT)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (HF first, then ours) (default: 3)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps on both sides (default: 40 with "
                    "--model, else 150)")
    ap.add_argument("--batch-size", type=int, default=32, help="training batch on both sides (default: 32)")
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate on both sides (default: 2e-5 with --model, else 1e-4)")
    ap.add_argument("--dev-pairs", type=int, default=1000, help="first dev pairs evaluated (0: all) (default: 1000)")
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="both sides' precision; auto: the faster one here, by a timing (default: auto)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="both sides' device; cuda runs HF Trainer from a copy without use_cpu=True (default: cpu)")
    ap.add_argument("--ours", default="", help="extra `afqmc train` options, e.g. '--threads 2'")
    args = ap.parse_args()
    args.steps = args.steps or (40 if args.model else 150)
    args.lr = args.lr or (2e-5 if args.model else 1e-4)
    data = need_reference("data", "afqmc")
    script = need_reference("baselines", "hf_trainer_pairs.py")
    try:
        import accelerate  # noqa: F401  (the baseline's Trainer needs it)
    except ImportError:
        raise SystemExit("HF Trainer needs accelerate: pip install accelerate (benchmark only)") from None
    work = Path(tempfile.mkdtemp(prefix="hf-bench-"))
    model = args.model.resolve() if args.model else small_bert(data / "train.json", work / "small-bert")
    precision = resolve_precision(args.precision, args.device, model)
    script = hf_script(script, args.device, work)
    train, dev = data / "train.json", first_pairs(data / "dev.json", args.dev_pairs, work)
    rows: dict[str, list[dict[str, float]]] = {"hf": [], "ours": []}
    for i in range(args.rounds):
        rows["hf"].append(run_hf(script, train, dev, model, args, precision, work))
        rows["ours"].append(run_ours(train, dev, model, args, precision, work / f"ours-{i}"))
        print(f"round {i + 1}: " + "; ".join(
            f"{side} {r['train']:.1f} train/s, {r['eval']:.1f} dev/s, {r['process']:.1f} s, {r['rss']:.2f} GB"
            for side, r in ((s, rows[s][-1]) for s in rows)), flush=True)
    report(rows, args, precision)


if __name__ == "__main__":
    main()
