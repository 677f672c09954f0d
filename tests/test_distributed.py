"""torchrun / DDP: exactly-once data per epoch, rank-0-only outputs, distributed evaluation, and
2-process training that matches 1-process training at the same global batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import REPO
from shared.checkpoint import load_weights
from shared.distributed import split_batches
from shared.errors import UserError

pytestmark = pytest.mark.slow  # real processes killed, signalled or launched by torchrun


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n,bs", [(1, 4), (5, 2), (7, 3), (64, 8), (100, 7)])
def test_split_batches_exactly_once_equal_steps(n, bs, world):
    order = list(torch.randperm(n, generator=torch.Generator().manual_seed(n)).tolist())
    global_batches = [order[i:i + bs * world] for i in range(0, n, bs * world)]
    if n < world:  # some process would get no example at all
        with pytest.raises(UserError, match="fewer than the"):
            split_batches(global_batches, 0, world)
        return
    per_rank = [split_batches(global_batches, r, world) for r in range(world)]
    assert len({len(p) for p in per_rank}) == 1  # same number of steps on every rank
    seen = [i for p in per_rank for b in p for i in b]
    assert sorted(seen) == list(range(n))
    assert all(len(b) >= 1 for p in per_rank for b in p)


def torchrun(*args, nproc=2, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _check_plans(folder, n, epochs, parts=2):
    for e in range(epochs):
        files = sorted(folder.glob(f"rank*-epoch{e}.json"))
        assert len(files) == parts
        seen = [json.loads(f.read_text()) for f in files]
        flat = [i for ids in seen for i in ids]
        assert len(flat) == len(set(flat))  # disjoint across ranks (and workers)
        assert sorted(flat) == list(range(n))  # cover the epoch exactly once


def test_fashion_streaming_loader_two_processes_two_workers(fashion_dir, tmp_path):
    from conftest import synthetic_fashion, write_idx
    images, labels = synthetic_fashion(301, 9)  # 301 = 76 + 75 + 75 + 75: uneven shards
    write_idx(fashion_dir / "train-images-idx3-ubyte.gz", images, 2051, compress=True)
    write_idx(fashion_dir / "train-labels-idx1-ubyte.gz", labels, 2049, compress=True)
    plans = tmp_path / "plans"
    plans.mkdir()
    out = tmp_path / "stream"
    r = torchrun("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "2",
                 "--batch-size", "16", "--loader", "iterable", "--num-workers", "2", "--no-download",
                 env={"PAIRTRAIN_TEST_RECORD_PLAN": str(plans)})
    assert r.returncode == 0, r.stderr[-3000:]
    _check_plans(plans, 271, 2, parts=4)  # 2 ranks x 2 workers, over the 301 - 30 images not held out for validation
    # every shard makes ceil(68/16) = 5 batches (the 67-image ones too): 10 steps per rank and epoch
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 20


def test_fashion_two_processes(fashion_dir, tmp_path):
    plans = tmp_path / "plans"
    plans.mkdir()
    out = tmp_path / "ddp"
    r = torchrun("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "2",
                 "--batch-size", "16", "--no-download", "--log-interval", "0", "--precision", "fp32",
                 env={"PAIRTRAIN_TEST_RECORD_PLAN": str(plans)})
    assert r.returncode == 0, r.stderr[-3000:]
    _check_plans(plans, 270, 2)  # the 300 - 30 training images not held out for validation
    assert r.stdout.count("Epoch 1\n") == 1 and r.stdout.count("Done!") == 1  # rank 0 prints alone
    assert "2 process(es) x batch 16 = global batch 32" in r.stdout
    log = (out / "train.log").read_text()
    assert log.count("epoch 2: train loss") == 1
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2

    # Same global batch (32) in one process: ends within a small tolerance of the 2-process run.
    single = tmp_path / "single"
    r1 = subprocess.run([sys.executable, "-m", "fashion", "train", "--data-dir", str(fashion_dir), "--out",
                         str(single), "--epochs", "2", "--batch-size", "32", "--no-download", "--log-interval",
                         "0", "--precision", "fp32"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r1.returncode == 0, r1.stderr
    a, b = load_weights(out / "last" / "model.safetensors"), load_weights(single / "last" / "model.safetensors")
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    # Identical data, batches and initial weights: only the floating-point order of the gradient
    # average (mean of two half-batch means vs one mean) differs, so weights agree to ~1e-6.
    assert worst < 1e-4, worst
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (out, single))
    assert abs(ma["test_accuracy"] - mb["test_accuracy"]) <= 0.01

    # --resume under torchrun: stop after 13 steps, resume, end where the uninterrupted run did.
    args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "2", "--batch-size", "16",
            "--no-download", "--log-interval", "0", "--precision", "fp32"]
    part = tmp_path / "part"
    assert torchrun(*args, "--out", str(part), "--max-steps", "13").returncode == 0
    r = torchrun(*args, "--out", str(part), "--resume", "--max-steps", "0")  # lifts the saved limit of 13
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in (part / "train.log").read_text()
    c = load_weights(part / "last" / "model.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)

    # A user error ends every rank with the message (prefixed by the rank), not a hang.
    r = torchrun(*args, "--out", str(out))
    assert r.returncode != 0 and "[rank 0] fashion: error: --out" in r.stderr and "already holds a run" in r.stderr


def test_afqmc_two_processes(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(90, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(31, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    plans = tmp_path / "plans"
    plans.mkdir()
    out = tmp_path / "ddp"
    r = torchrun("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                 "--out", str(out), "--epochs", "2", "--batch-size", "8", "--log-interval", "0",
                 env={"PAIRTRAIN_TEST_RECORD_PLAN": str(plans)})
    assert r.returncode == 0, r.stderr[-3000:]
    _check_plans(plans, 90, 2)
    assert r.stdout.count("Done!") == 1
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs_completed"] == 2 and (out / "best" / "model.safetensors").is_file()
    # The dev set is evaluated exactly once across the two ranks.
    assert sum(map(sum, m["confusion_matrix"])) == 31
    r = subprocess.run([sys.executable, "-m", "afqmc", "eval", "--model-dir", str(out / "last"), "--file", str(dev)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
    assert f"accuracy: {100 * m['dev_accuracy']:.2f}%" in r.stdout  # single-process eval agrees


def test_distributed_evaluation_equals_single_process(tmp_path):
    import torch.multiprocessing as mp
    from torch import nn

    import ddp_worker
    from shared.evaluation import evaluate

    out = tmp_path / "m.json"
    mp.spawn(ddp_worker.run, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    dist_metrics = json.loads(out.read_text())
    model, x, y = ddp_worker.problem()
    single = evaluate(model, ddp_worker.batches(x, y, range(len(x))), nn.CrossEntropyLoss(),
                      device=torch.device("cpu"), num_classes=3, progress=False)
    assert dist_metrics["n"] == single["n"] == 203
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall", "confusion_matrix"):
        assert dist_metrics[key] == single[key], key
    assert dist_metrics["loss"] == pytest.approx(single["loss"], rel=1e-6)


def test_afqmc_streaming_two_processes_two_workers(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(83, 0))  # 21 + 21 + 21 + 20 records per shard
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(15, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    plans = tmp_path / "plans"
    plans.mkdir()
    out = tmp_path / "stream"
    r = torchrun("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                 "--out", str(out), "--epochs", "2", "--batch-size", "8", "--streaming", "--num-workers", "2",
                 "--shuffle-buffer", "10", "--log-interval", "0", env={"PAIRTRAIN_TEST_RECORD_PLAN": str(plans)})
    assert r.returncode == 0, r.stderr[-3000:]
    _check_plans(plans, 83, 2, parts=4)
    # every shard makes ceil(20/8) = 3 batches: 2 workers x 3 = 6 steps per rank and epoch
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 12
