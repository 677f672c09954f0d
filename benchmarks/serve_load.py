"""Load on `afqmc serve`: one pair per request, sent one at a time, then by 32 concurrent clients.

    python benchmarks/serve_load.py [--model-dir DIR] [--requests 400] [--clients 32] [--rounds 3]

Without --model-dir a small scratch model (4x256, the default size) is trained for one step on
STS-B-zh (``../shared/data``) or on synthetic pairs: its weights do not matter for speed. The two
modes alternate for ``--rounds`` rounds against one server; prints requests/s and p50/p99 latency
of each and the median ratio (this machine's noise is +-20% between runs). The clients run in this process
(aiohttp), so on a 2-core machine they share the CPU with the server, as the issue asks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STSB = REPO.parent / "shared" / "data" / "sts-b-zh" / "dev.json"


def sentences() -> list[tuple[str, str]]:
    if STSB.is_file():
        rows = [json.loads(line) for line in STSB.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["sentence1"], r["sentence2"]) for r in rows]
    chars = "花呗借还款账单怎么为什么可以是不的了我能用开通额度提升分期利息逾期到期冻结支付宝银行卡信用"
    rng = random.Random(0)
    return [("".join(rng.choices(chars, k=rng.randint(8, 24))), "".join(rng.choices(chars, k=rng.randint(8, 24))))
            for _ in range(1000)]


def build_model(where: Path) -> Path:
    train = where / "train.jsonl"
    train.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "label": str(i % 2)}, ensure_ascii=False)
                             + "\n" for i, (a, b) in enumerate(sentences())), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "afqmc", "train", "--train-file", str(train), "--dev-file", str(train),
                    "--model", "scratch", "--max-steps", "1", "--out", str(where / "run"), "--quiet"],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return where / "run" / "best"


def start_server(model_dir: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "afqmc", "serve", "--model-dir", str(model_dir), "--port", "0",
                             *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ})
    for line in proc.stdout:
        if (m := re.search(r"serving on (http://\S+?)/ ", line)):
            return proc, m.group(1)
    raise SystemExit("the server did not start")


async def _client(session, url: str, pairs: list, latencies: list) -> None:
    for pair in pairs:
        started = time.perf_counter()
        async with session.post(url + "/predict", json={"pairs": [list(pair)]}) as r:
            assert r.status == 200, await r.text()
            await r.read()
        latencies.append(time.perf_counter() - started)


async def load(url: str, pairs: list, clients: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await _client(session, url, pairs[:5], [])  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(_client(session, url, pairs[i::clients], latencies) for i in range(clients)))
        seconds = time.perf_counter() - started
    latencies.sort()
    return {"requests_per_second": len(pairs) / seconds, "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=None, help="a model directory (default: build a small scratch one)")
    parser.add_argument("--requests", type=int, default=400, help="requests per mode")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the second mode")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both modes")
    parser.add_argument("server_args", nargs="*", help="more afqmc serve flags (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else build_model(Path(tmp))
        proc, url = start_server(model_dir, args.server_args)
        ratios = []
        try:
            pairs = sentences()[:args.requests]
            for round_ in range(1, args.rounds + 1):
                sequential = asyncio.run(load(url, pairs, 1))
                concurrent = asyncio.run(load(url, pairs, args.clients))
                ratios.append(concurrent["requests_per_second"] / sequential["requests_per_second"])
                for name, r in (("sequential", sequential), (f"{args.clients} concurrent", concurrent)):
                    print(f"round {round_} {name}: {r['requests_per_second']:.1f} requests/s, "
                          f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    print(f"ratio (concurrent / sequential requests/s) per round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
          f"median {sorted(ratios)[len(ratios) // 2]:.2f}x")

if __name__ == "__main__":
    main()
