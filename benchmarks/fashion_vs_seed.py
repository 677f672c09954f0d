"""`fashion train` vs the tutorial's seed_fashion.py on the real data, side by side, alternating.

The seed program needs torchvision, which does not import beside the CPU torch 2.13 build, so it
runs in its own environment:

    python -m venv /tmp/seed-env
    /tmp/seed-env/bin/pip install torch==2.14.1 torchvision==0.29.1
    python benchmarks/fashion_vs_seed.py --seed-python /tmp/seed-env/bin/python [--repeats 2]

Reports whole-process wall time and test accuracy of (a) the default recipe (the MLP), (b) the CNN with
its own defaults (`--arch cnn`; leave it out with --no-cnn) and (c) the tutorial recipe at the seed's batch
size (64, 3 epochs), which isolates the loop's own speed-up. Targets: the MLP >= 89% in <= 1/2.5 of the
seed's time, the CNN >= 93% in <= 5x the seed's time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

from common import REPO, need_reference, timed

TUTORIAL_RECIPE = ["--arch", "tutorial", "--epochs", "3", "--batch-size", "64", "--lr", "1e-3",
                   "--schedule", "constant", "--no-normalize", "--no-shuffle", "--label-smoothing", "0",
                   "--precision", "fp32"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-python", required=True, help="a python with torchvision installed")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ours", default="", help="extra options for the default and CNN runs, e.g. '--threads 2'")
    ap.add_argument("--no-cnn", dest="cnn", action="store_false", help="leave out the --arch cnn run")
    args = ap.parse_args()
    data = need_reference("data", "fashion-mnist")
    seed_script = need_reference("baselines", "seed_fashion.py")
    work = Path(tempfile.mkdtemp(prefix="fashion-bench-"))
    raw = work / "FashionMNIST" / "raw"  # torchvision's layout, unpacked so it does not try to download
    raw.mkdir(parents=True)
    for f in data.glob("*.gz"):
        (raw / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
    runs = {"default": args.ours.split(), "cnn": ["--arch", "cnn", *args.ours.split()],
            "tutorial-recipe": TUTORIAL_RECIPE}
    if not args.cnn:
        del runs["cnn"]
    rows: dict[str, list[tuple[float, float]]] = {"seed": [], **{name: [] for name in runs}}
    for i in range(args.repeats):
        secs, out = timed([args.seed_python, str(seed_script), str(work)], cwd=work)
        rows["seed"].append((secs, float(re.search(r"accuracy=([\d.]+)", out).group(1)) / 100))
        for name, extra in runs.items():
            out_dir = work / f"{name}-{i}"
            secs, _ = timed([sys.executable, "-m", "fashion", "train", "--data-dir", str(data), "--out",
                             str(out_dir), "--no-download", "--quiet", *extra], cwd=REPO)
            m = json.loads((out_dir / "metrics.json").read_text())
            rows[name].append((secs, m["test_accuracy"]))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1][0]:.1f}s {100 * v[-1][1]:.2f}%" for k, v in rows.items()),
              flush=True)
    seed_s = statistics.median(s for s, _ in rows["seed"])
    print(f"\n{'run':<16}{'median wall s':>14}{'accuracy %':>22}{'time / seed':>13}")
    for k, v in rows.items():
        med = statistics.median(s for s, _ in v)
        accs = ", ".join(f"{100 * a:.2f}" for _, a in v)
        print(f"{k:<16}{med:>14.1f}{accs:>22}{med / seed_s:>13.2f}")
    print(f"\ndefault recipe (MLP): {seed_s / statistics.median(s for s, _ in rows['default']):.2f}x faster than "
          f"the seed (target >= 2.5x with >= 89.0% accuracy)")
    if "cnn" in rows:
        print(f"CNN: {statistics.median(s for s, _ in rows['cnn']) / seed_s:.2f}x the seed's time "
              f"(target <= 5x with >= 93.0% accuracy)")


if __name__ == "__main__":
    main()
