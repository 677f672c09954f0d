"""Real interruptions: SIGKILL a training process at seeded random moments (including inside a
checkpoint write, widened by a test-only delay), resume, and compare bit for bit with a run that
was never interrupted."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import REPO, run_cli
from shared.checkpoint import load_weights

pytestmark = pytest.mark.slow  # real processes killed, signalled or launched by torchrun


def _newest_step(out: Path) -> int:
    ckpts = out / "checkpoints"
    steps = [int(p.name[5:]) for p in ckpts.glob("step-*")] if ckpts.is_dir() else []
    return max(steps, default=0)


def _kill_at(args: list[str], out: Path, after_step: int, extra_wait: float, delay: str) -> bool:
    """Start training, SIGKILL it once checkpoint ``after_step`` exists (+ ``extra_wait`` s).
    Returns False if the run finished before the kill."""
    env = {**os.environ, "PAIRTRAIN_TEST_SAVE_DELAY": delay}
    p = subprocess.Popen([sys.executable, "-m", *args, "--out", str(out)], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while p.poll() is None and _newest_step(out) < after_step and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(extra_wait)
    if p.poll() is not None:
        return False
    p.kill()
    p.wait()
    return True


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_weights(a / "last" / "model.safetensors"), load_weights(b / "last" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _kill_resume_compare(args: list[str], tmp_path: Path, total_steps: int, trials: int, seed: int,
                         retype: bool = True) -> None:
    """``retype=False`` resumes with ``--out X --resume`` alone: every setting from the run directory."""
    ref = tmp_path / "reference"
    r = run_cli(*args, "--out", str(ref))
    assert r.returncode == 0, r.stderr
    rng = random.Random(seed)
    killed = mid_write = 0
    for trial in range(trials):
        out = tmp_path / f"killed-{trial}"
        if _kill_at(args, out, rng.randint(1, total_steps - 2), rng.uniform(0.0, 0.25), "0.15"):
            killed += 1
        partial = list((out / "checkpoints").glob(".step-*.tmp-*"))
        mid_write += bool(partial)
        r = run_cli(*(args if retype else args[:2]), "--out", str(out), "--resume")
        assert r.returncode == 0, r.stderr
        assert "resumed from" in (out / "train.log").read_text()  # it continued, it did not start over
        assert "skipping unusable checkpoint" not in r.stderr  # a kill never leaves a bad step-* dir
        _assert_same_weights(ref, out)
        # The epoch that was cut reports its mean loss over the whole epoch, as the uninterrupted run.
        histories = [json.loads((d / "metrics.json").read_text())["history"] for d in (ref, out)]
        assert [e["train_loss"] for e in histories[0]] == [e["train_loss"] for e in histories[1]]
    assert killed >= 1


def test_fashion_sigkill_and_resume_is_bit_identical(fashion_dir, tmp_path):
    args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "3", "--batch-size", "32",
            "--save-every-steps", "2", "--no-download", "--log-interval", "0", "--quiet", "--hflip", "0.5"]
    _kill_resume_compare(args, tmp_path, total_steps=30, trials=3, seed=20261126, retype=False)


def test_afqmc_sigkill_and_resume_is_bit_identical(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
            "--epochs", "2", "--batch-size", "16", "--save-every-steps", "2", "--lr", "1e-3", "--quiet"]
    _kill_resume_compare(args, tmp_path, total_steps=12, trials=2, seed=7, retype=False)


def test_afqmc_scratch_sigkill_and_resume_is_bit_identical(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
            "--scratch-size", "tiny", "--epochs", "2", "--batch-size", "16", "--save-every-steps", "2", "--quiet"]
    _kill_resume_compare(args, tmp_path, total_steps=12, trials=2, seed=13)


def test_afqmc_streaming_sigkill_and_resume_is_bit_identical(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
            "--epochs", "2", "--batch-size", "16", "--save-every-steps", "2", "--lr", "1e-3", "--quiet",
            "--streaming", "--num-workers", "2", "--shuffle-buffer", "20"]
    _kill_resume_compare(args, tmp_path, total_steps=12, trials=2, seed=11)


def test_resume_on_empty_directory_starts_fresh(fashion_dir, tmp_path):
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "1", "--out",
                str(tmp_path / "new"), "--resume", "--no-download")
    assert r.returncode == 0, r.stderr
    assert "no complete checkpoint" in r.stdout and "starting a fresh run" in r.stdout


def test_resume_with_changed_settings_is_refused(fashion_dir, tmp_path):
    out = str(tmp_path / "r")
    assert run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "1", "--out", out,
                   "--no-download").returncode == 0
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "1", "--out", out,
                "--no-download", "--resume", "--lr", "0.5")
    assert r.returncode == 2 and "lr" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "1", "--out", out, "--no-download")
    assert r.returncode == 2 and "already holds a run" in r.stderr


@pytest.mark.parametrize("where", ["empty", "header", "middle", "tail", "manifest"])
def test_corrupt_newest_checkpoint_falls_back(fashion_dir, tmp_path, where):
    args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "2", "--batch-size", "64",
            "--save-every-steps", "3", "--no-download", "--log-interval", "0"]
    ref = tmp_path / "ref"
    assert run_cli(*args, "--out", str(ref)).returncode == 0
    out = tmp_path / "run"
    assert run_cli(*args, "--out", str(out), "--max-steps", "4").returncode == 0  # newest: step 4, older: 3
    newest = out / "checkpoints" / "step-0000000004"
    blob = newest / "checkpoint.pt"
    data = blob.read_bytes()
    cut = {"empty": 0, "header": 20, "middle": len(data) // 2, "tail": len(data) - 10}
    if where == "manifest":
        (newest / "MANIFEST.json").write_text("{not json")
    else:
        blob.write_bytes(data[:cut[where]])
    r = run_cli(*args, "--out", str(out), "--resume", "--max-steps", "0")  # the run saved its limit of 4
    assert r.returncode == 0, r.stderr
    assert "skipping unusable checkpoint" in r.stderr and "step-0000000004" in r.stderr
    assert "resumed from" in r.stdout and "step-0000000003" in r.stdout
    _assert_same_weights(ref, out)


def test_all_checkpoints_corrupt_starts_fresh(fashion_dir, tmp_path):
    args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "1", "--no-download"]
    out = tmp_path / "run"
    assert run_cli(*args, "--out", str(out)).returncode == 0
    for ckpt in (out / "checkpoints").iterdir():
        (ckpt / "checkpoint.pt").write_bytes(b"garbage")
    r = run_cli(*args, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "skipping unusable checkpoint" in r.stderr and "starting a fresh run" in r.stdout


def test_a_checkpoint_from_before_an_option_existed_resumes_while_it_keeps_its_default():
    from shared.training import _config_mismatch

    saved = {"lr": 0.1}  # written before --patience existed
    assert _config_mismatch(saved, {"lr": 0.1, "patience": 0}, (), {"patience": 0}) == []
    assert _config_mismatch(saved, {"lr": 0.1, "patience": 3}, (), {"patience": 0}) == [
        "patience: checkpoint 0 vs now 3"]
