"""Inference backends side by side: `afqmc predict --file` pairs/s (tokenisation included) with torch fp32,
torch bf16, ONNX fp32 and ONNX int8 on one model directory, alternating, median of the rounds; and the
accuracy of each when the file is labelled. Exports the ONNX models first when the directory has none.

    python benchmarks/inference_backends.py --model-dir runs/me5/best [--file dev.json] [--pairs 1000] [--rounds 3]

Run it on an otherwise idle machine (two processes on 2 cores are ~10x slower, not 2x), and say which
CPU it was (`lscpu`: avx512_bf16 / amx_tile decide whether bf16 is native).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"torch fp32": ["--precision", "fp32"], "torch bf16": ["--precision", "bf16"],
            "onnx fp32": ["--backend", "onnx"], "onnx int8": ["--backend", "onnx", "--int8"]}


def predict(model_dir: str, file: str, flags: list[str], out: Path) -> tuple[float, float | None]:
    r = subprocess.run([sys.executable, "-m", "afqmc", "predict", "--model-dir", model_dir, "--file", file,
                        "--output", str(out), *flags], cwd=REPO, capture_output=True, text=True, check=True)
    rate = float(re.search(r"\(([\d.]+) pairs/s", r.stdout).group(1))
    acc = re.search(r"accuracy ([\d.]+)%", r.stdout)
    return rate, float(acc.group(1)) if acc else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="a trained model directory (best/)")
    parser.add_argument("--file", default=str(REPO.parent / "shared" / "data" / "afqmc" / "dev.json"),
                        help="pairs to predict (default: AFQMC dev)")
    parser.add_argument("--pairs", type=int, default=1000, help="the file's first N pairs")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    if not Path(args.file).is_file():
        print(f"skipped: {args.file} not found")
        return
    if not (Path(args.model_dir) / "onnx" / "model.int8.onnx").is_file():
        subprocess.run([sys.executable, "-m", "afqmc", "export", "--model-dir", args.model_dir, "--int8"],
                       cwd=REPO, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        lines = [x for x in Path(args.file).read_text(encoding="utf-8").splitlines() if x.strip()][:args.pairs]
        file = Path(tmp) / f"pairs{Path(args.file).suffix}"
        file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        rates: dict[str, list[float]] = {k: [] for k in VARIANTS}
        accuracy: dict[str, float | None] = {}
        for _ in range(args.rounds):
            for name, flags in VARIANTS.items():
                rate, accuracy[name] = predict(args.model_dir, str(file), flags, Path(tmp) / "p.json")
                rates[name].append(rate)
    base = median(rates["torch fp32"])
    print(f"\n{len(lines)} pairs of {args.file}, {args.rounds} alternating rounds\n")
    print("| backend | pairs/s (rounds) | median vs torch fp32 | accuracy |\n| --- | --- | --- | --- |")
    for name, values in rates.items():
        acc = f"{accuracy[name]:.2f}%" if accuracy[name] is not None else "(unlabelled)"
        print(f"| {name} | {median(values):.1f} ({' / '.join(f'{v:.1f}' for v in values)}) | "
              f"{median(values) / base:.2f}x | {acc} |")


if __name__ == "__main__":
    main()
