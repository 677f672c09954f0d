"""This machine's matrix-product peak at transformer shapes, fp32 and bf16: the roofline that
`afqmc train`'s reported FLOP/s (metrics.json `train_flops_per_second`) is set against.

    python benchmarks/matmul_peak.py [--threads 2] [--hidden 384] [--rows 1024]

Times (rows x hidden) @ (hidden x 4*hidden) and (rows x 4*hidden) @ (4*hidden x hidden), the
feed-forward products of a BERT layer, best of 5 rounds of 10 each, and prints GFLOP/s.
"""

from __future__ import annotations

import argparse
import time

import torch


def gflops(m: int, k: int, n: int, dtype: torch.dtype) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    ap.add_argument("--hidden", type=int, default=384, help="model width (default: 384, mE5-small)")
    ap.add_argument("--rows", type=int, default=1024, help="tokens per batch (default: 1024, 32 pairs of 32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    h, m = args.hidden, args.rows
    for dtype in (torch.float32, torch.bfloat16):
        up, down = gflops(m, h, 4 * h, dtype), gflops(m, 4 * h, h, dtype)
        print(f"{str(dtype).removeprefix('torch.'):<9} {m}x{h}x{4 * h}: {up:6.0f} GFLOP/s   "
              f"{m}x{4 * h}x{h}: {down:6.0f} GFLOP/s")


if __name__ == "__main__":
    main()
