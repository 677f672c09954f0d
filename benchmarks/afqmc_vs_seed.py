"""`afqmc train` vs the tutorial's seed_afqmc.py with the same small BERT, side by side, alternating.

    python benchmarks/afqmc_vs_seed.py [--steps 60] [--batch-size 32] [--repeats 2]

Builds a small randomly initialised Chinese BERT with ../shared/baselines/make_small_bert.py, then
runs both programs for the same number of optimizer steps at the same batch size on the AFQMC
training file and compares training throughput (pairs/s) and evaluation throughput on dev.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from common import REPO, need_reference, small_bert, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ours", default="", help="extra `afqmc train` options, e.g. '--bf16'")
    args = ap.parse_args()
    data = need_reference("data", "afqmc")
    seed_script = need_reference("baselines", "seed_afqmc.py")
    work = Path(tempfile.mkdtemp(prefix="afqmc-bench-"))
    bert = small_bert(data / "train.json", work / "small-bert")
    seed_train, seed_eval, our_train, our_eval, our_pred = [], [], [], [], []
    accs: dict[str, list[float]] = {"seed": [], "ours": []}
    for i in range(args.repeats):
        _, out = timed([sys.executable, str(seed_script), str(data), str(bert), "1", "2e-5",
                        str(args.batch_size), str(args.steps)])
        line = re.search(r"valid_acc=([\d.]+) train_samples_per_s=([\d.]+) eval_samples_per_s=([\d.]+)", out)
        accs["seed"].append(float(line.group(1)) / 100)
        seed_train.append(float(line.group(2)))
        seed_eval.append(float(line.group(3)))
        out_dir = work / f"ours-{i}"
        timed([sys.executable, "-m", "afqmc", "train", "--train-file", str(data / "train.json"), "--dev-file",
               str(data / "dev.json"), "--model", str(bert), "--epochs", "1", "--batch-size",
               str(args.batch_size), "--max-steps", str(args.steps), "--lr", "2e-5", "--warmup-ratio", "0",
               "--out", str(out_dir), "--quiet", *args.ours.split()], cwd=REPO)
        h = json.loads((out_dir / "metrics.json").read_text())["history"][-1]
        _, pred_out = timed([sys.executable, "-m", "afqmc", "predict", "--model-dir", str(out_dir / "last"), "--file",
                             str(data / "dev.json"), "--output", str(work / "pred.json")], cwd=REPO)
        our_pred.append(float(re.search(r"\(([\d.]+) pairs/s", pred_out).group(1)))
        our_train.append(h["train_samples_per_second"])
        our_eval.append(h["dev_examples_per_second"])
        accs["ours"].append(h["dev_accuracy"])
        print(f"round {i + 1}: seed {seed_train[-1]:.1f} pairs/s train, {seed_eval[-1]:.1f} eval; "
              f"ours {our_train[-1]:.1f} train, {our_eval[-1]:.1f} eval, {our_pred[-1]:.1f} predict", flush=True)
    st, se, ot, oe, op = (statistics.median(x) for x in (seed_train, seed_eval, our_train, our_eval, our_pred))
    print(f"\nbatch {args.batch_size}, {args.steps} steps, median of {args.repeats}, ours with "
          f"{args.ours or 'default options'}:")
    print(f"training   seed {st:7.1f} pairs/s   ours {ot:7.1f} pairs/s   ratio {ot / st:.2f}x (target >= 2.5x)")
    print(f"evaluation seed {se:7.1f} pairs/s   ours {oe:7.1f} pairs/s   ratio {oe / se:.2f}x "
          "(dev eval inside training)")
    print(f"prediction seed {se:7.1f} pairs/s   ours {op:7.1f} pairs/s   ratio {op / se:.2f}x (target >= 4x; "
          "`afqmc predict --file dev.json`, tokenisation included, vs the seed's eval loop)")
    print("dev accuracy  seed " + ", ".join(f"{100 * a:.2f}%" for a in accs["seed"])
          + "   ours " + ", ".join(f"{100 * a:.2f}%" for a in accs["ours"]))


if __name__ == "__main__":
    main()
