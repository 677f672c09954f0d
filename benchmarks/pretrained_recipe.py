"""The pretrained recipe (``afqmc train --model DIR`` with its defaults) against Hugging Face ``Trainer`` with
its own defaults on the same model, the scratch recipe and overlap-LR, on held-out splits of every visible set.

    python benchmarks/pretrained_recipe.py --model ME5_DIR [--sets afqmc,stsb,ocnli,cinlid,snli] [--seeds 1,2]
        [--train-size 800] [--dev-size 300] [--heldout-size 500] [--sides ours,hf,scratch] [-- TRAIN FLAGS]

The splits are benchmarks/heldout_recipe.py's (fixed shuffle, seed 0; the held-out part never touches
training or selection), cut to the sizes given: multilingual-e5-small trains at ~25-35 pairs/s on 2 cores,
so the recipe is compared on subsets (say which in any table). Every side reads the same files. Runs one
training at a time. Prints one JSON line per run and a Markdown table of means over the seeds.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from heldout_recipe import DATA, REPO, baselines, make_splits  # noqa: E402


def _cut(path: str, n: int, where: Path) -> str:
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    out = where / f"{Path(path).stem}-{n}{Path(path).suffix}"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(out)


def ours(model: str, files: tuple[str, str, str], seed: int, out: Path, extra: list[str]) -> dict:
    train, dev, held = files
    subprocess.run([sys.executable, "-m", "afqmc", "train", "--train-file", train, "--dev-file", dev, "--model", model,
                    "--seed", str(seed), "--out", str(out), "--quiet", *extra], check=True, cwd=REPO)
    ev = subprocess.run([sys.executable, "-m", "afqmc", "eval", "--model-dir", str(out / "best"), "--file", held],
                        capture_output=True, text=True, check=True, cwd=REPO).stdout
    m = json.loads((out / "metrics.json").read_text())
    accuracy = float(re.search(r"^accuracy: ([\d.]+)%", ev, re.M).group(1)) / 100
    return {"heldout_accuracy": accuracy, "dev_accuracy": m["best_dev_accuracy"], "best_step": m["best_step"],
            "steps": m["global_step"],
            "epochs": m["config"]["epochs"], "seconds": round(m["train_seconds"], 1)}


def hf(model: str, files: tuple[str, str, str], seed: int) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "hf_trainer_heldout.py"), *files, model,
                          str(seed)], capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="pretrained checkpoint directory (e.g. mE5-small)")
    parser.add_argument("--sets", default="afqmc,stsb,ocnli,cinlid,snli", help="comma-separated set names")
    parser.add_argument("--seeds", default="1,2", help="comma-separated seeds")
    parser.add_argument("--train-size", type=int, default=800, help="training pairs per set")
    parser.add_argument("--dev-size", type=int, default=300, help="dev pairs per set (our selection)")
    parser.add_argument("--heldout-size", type=int, default=500, help="held-out pairs per set")
    parser.add_argument("--sides", default="ours,hf,scratch", help="which trainings to run")
    parser.add_argument("extra", nargs="*", help="more `afqmc train` flags for our side (after --)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found")
        return
    sides, table = args.sides.split(","), []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            where = Path(tmp) / name
            where.mkdir()
            full = make_splits(name, where)
            files = tuple(_cut(f, n, where) for f, n in zip(full, (args.train_size, args.dev_size, args.heldout_size)))
            row = {"set": name, "overlap": baselines(files[0], files[2])}
            for seed in (int(s) for s in args.seeds.split(",")):
                for side in sides:
                    if side == "hf":
                        r = hf(args.model, files, seed)
                    else:
                        r = ours(args.model if side == "ours" else "scratch", files, seed,
                                 where / f"{side}-{seed}", args.extra if side == "ours" else [])
                    print(json.dumps({"set": name, "seed": seed, "side": side, **r}), flush=True)
                    row.setdefault(side, []).append(r["heldout_accuracy"])
            table.append(row)
    print("\n| set (train/dev/held-out) | overlap LR | " + " | ".join(sides) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in sides) + " |")
    for row in table:
        cells = [f"{100 * mean(row[s]):.1f}% ({' / '.join(f'{100 * a:.1f}' for a in row[s])})" for s in sides]
        print(f"| {row['set']} ({args.train_size}/{args.dev_size}/{row['overlap']['n']}) | "
              f"{100 * row['overlap']['overlap_lr_accuracy']:.1f}% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
