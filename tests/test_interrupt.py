"""Everyday interruptions, with real processes: Ctrl-C and SIGTERM save and say how to continue
(during training and during evaluation), a second Ctrl-C while saving, one trainer per run
directory, a full disk. Every resumed run must end bit-identical to an uninterrupted one."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import REPO, run_cli
from test_resume import _assert_same_weights

pytestmark = pytest.mark.slow  # real processes killed, signalled or launched by torchrun


def _fashion_args(fashion_dir: Path, *extra: str) -> list[str]:
    # --val-size 0: these tests time signals against whole 300-image epochs (10 steps) and their test-set
    # evaluation; selection on a validation split is tested in test_fashion and test_defects.
    return ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "3", "--batch-size", "32",
            "--no-download", "--quiet", "--val-size", "0", *extra]


def _start(args: list[str], out: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args, "--out", str(out)], cwd=REPO, text=True,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, p: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert p.poll() is None, p.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def _steps(out: Path) -> list[int]:
    ckpts = out / "checkpoints"
    return sorted(int(p.name[5:]) for p in ckpts.glob("step-*")) if ckpts.is_dir() else []


def _log(out: Path) -> str:
    return (out / "train.log").read_text() if (out / "train.log").exists() else ""


def _resume_and_compare(args: list[str], out: Path, ref: Path) -> None:
    r = run_cli(*args, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in _log(out)
    _assert_same_weights(ref, out)
    histories = [json.loads((d / "metrics.json").read_text())["history"] for d in (ref, out)]
    for key in ("train_loss", "test_accuracy" if "fashion" in args else "dev_accuracy"):
        assert [e[key] for e in histories[0]] == [e[key] for e in histories[1]], key


@pytest.fixture
def fashion_reference(fashion_dir, tmp_path):
    args = _fashion_args(fashion_dir)
    r = run_cli(*args, "--out", str(tmp_path / "reference"))
    assert r.returncode == 0, r.stderr
    return args, tmp_path / "reference"


@pytest.mark.parametrize("signum,code,seed", [(signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 2)])
def test_signal_during_training_saves_and_resumes_bit_identically(fashion_reference, tmp_path, signum, code, seed):
    args, ref = fashion_reference
    out = tmp_path / "run"
    at = random.Random(seed).randint(3, 20)  # a seeded step; slowed to ~50 ms per step by a save every step
    p = _start([*args, "--save-every-steps", "1"], out, PAIRTRAIN_TEST_SAVE_DELAY="0.05")
    _wait_for(lambda: _steps(out) and _steps(out)[-1] >= at, p)
    p.send_signal(signum)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {signal.Signals(signum).name} during training" in lines[0]
    assert "saved a complete checkpoint" in lines[0] and "--resume" in lines[0] and "Traceback" not in err
    _resume_and_compare([*args, "--save-every-steps", "1"], out, ref)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_interruption_inside_evaluation_resumes_bit_identically(fashion_reference, tmp_path, how):
    """Targeted, not by chance: the test data is evaluated slowly, and the signal arrives after the
    epoch's last loss line (the last training batch) while the evaluation runs."""
    args, ref = fashion_reference
    out = tmp_path / "run"
    p = _start([*args, "--log-interval", "10"], out, PAIRTRAIN_TEST_EVAL_DELAY="2")
    epoch = 1 if how == "SIGTERM" else 2  # SIGKILL saves nothing: kill in epoch 2, after epoch 1's checkpoint
    _wait_for(lambda: _log(out).count("[  300/  300]") >= epoch, p)  # the epoch trained; its evaluation sleeps 2 s
    time.sleep(0.5)
    p.send_signal(getattr(signal, how))
    _, err = p.communicate(timeout=120)
    if how == "SIGTERM":
        assert p.returncode == 143 and "during evaluation" in err and "at step 10" in err, err
        assert _steps(out) == [10]
    else:
        assert p.returncode == -9 and _steps(out) == [10]
    _resume_and_compare([*args, "--log-interval", "10"], out, ref)


def test_second_ctrl_c_while_saving_leaves_the_previous_checkpoint_intact(fashion_reference, tmp_path):
    args, ref = fashion_reference
    out = tmp_path / "run"
    p = _start([*args, "--save-every-steps", "4"], out, PAIRTRAIN_TEST_SAVE_DELAY="1.5")
    _wait_for(lambda: 4 in _steps(out), p)  # step 4 is complete ...
    _wait_for(lambda: list((out / "checkpoints").glob(".step-*.tmp-*")), p)  # ... and step 8 is being written
    p.send_signal(signal.SIGINT)  # finish the step, then save
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)  # and now: stop at once
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted" in err and "--resume" in err and "Traceback" not in err, err
    assert not list((out / "checkpoints").glob(".step-*")), "a partial write was left behind"
    assert 4 in _steps(out)
    _resume_and_compare([*args, "--save-every-steps", "4"], out, ref)


def test_one_trainer_per_run_directory(fashion_dir, tmp_path):
    args = _fashion_args(fashion_dir, "--epochs", "100", "--save-every-steps", "5")
    out = tmp_path / "run"
    first = _start(args, out, PAIRTRAIN_TEST_SAVE_DELAY="0.3")  # minutes of training: it outlives the checks
    try:
        _wait_for(lambda: _steps(out), first)
        for extra in ([], ["--resume"]):
            r = run_cli(*args, "--out", str(out), *extra, timeout=60)
            assert r.returncode == 2 and f"another training (pid {first.pid})" in r.stderr and str(out) in r.stderr
        assert first.poll() is None  # the first trainer is unaffected
    finally:
        first.kill()  # SIGKILL: its lock goes with it, and --resume simply proceeds
        first.wait()
    assert (out / ".lock").exists()
    until = _steps(out)[-1] + 5
    r = run_cli(*args, "--out", str(out), "--resume", "--max-steps", str(until))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["global_step"] == until


def test_eval_and_predict_run_beside_a_trainer(fashion_dir, tmp_path):
    args = _fashion_args(fashion_dir, "--epochs", "30", "--save-every-steps", "1")
    out = tmp_path / "run"
    p = _start(args, out, PAIRTRAIN_TEST_SAVE_DELAY="0.05")
    try:
        _wait_for(lambda: (out / "best" / "model.safetensors").exists(), p)
        r = run_cli("fashion", "eval", "--model-dir", str(out / "best"), "--data-dir", str(fashion_dir))
        assert r.returncode == 0, r.stderr
    finally:
        p.kill()
        p.wait()


def test_disk_full_while_checkpointing_is_one_line_and_resume_is_exact(fashion_reference, tmp_path):
    args, ref = fashion_reference
    out = tmp_path / "run"
    r = run_cli(*args, "--save-every-steps", "3", "--out", str(out), env={"PAIRTRAIN_TEST_SAVE_ERROR": "ENOSPC@6"})
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in r.stderr
    assert "the last complete checkpoint is step-0000000003" in lines[0]
    assert not list((out / "checkpoints").glob(".step-*")) and _steps(out) == [3]
    _resume_and_compare([*args, "--save-every-steps", "3"], out, ref)


def test_a_really_full_disk(fashion_reference, tmp_path):
    """A small tmpfs fills during the run: one line, exit 1; the run copied elsewhere resumes exactly."""
    args, ref = fashion_reference
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = run_cli(*args, "--save-every-steps", "1", "--out", str(disk / "run"))
        assert r.returncode == 1, r.stderr
        assert "No space left on device" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        shutil.copytree(disk / "run", tmp_path / "moved", ignore=shutil.ignore_patterns(".*"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    _resume_and_compare([*args, "--save-every-steps", "1"], tmp_path / "moved", ref)


def test_afqmc_ctrl_c_saves_and_resumes_bit_identically(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
            "--epochs", "2", "--batch-size", "16", "--save-every-steps", "1", "--lr", "1e-3", "--quiet"]
    ref = tmp_path / "reference"
    assert run_cli(*args, "--out", str(ref)).returncode == 0
    out = tmp_path / "run"
    p = _start(args, out, PAIRTRAIN_TEST_SAVE_DELAY="0.1")
    _wait_for(lambda: _steps(out) and _steps(out)[-1] >= 4, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "stopped by SIGINT" in err and "--resume" in err, err
    _resume_and_compare(args, out, ref)


def test_sigterm_to_the_torchrun_launcher_stops_every_rank_at_one_step(fashion_dir, tmp_path):
    args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "2", "--batch-size", "16",
            "--no-download", "--log-interval", "0", "--precision", "fp32", "--save-every-steps", "1"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "reference"
    r = subprocess.run([*launcher, *args, "--out", str(ref)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "run"
    p = subprocess.Popen([*launcher, *args, "--out", str(out)], cwd=REPO, text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**env, "PAIRTRAIN_TEST_SAVE_DELAY": "0.1"})
    _wait_for(lambda: _steps(out) and _steps(out)[-1] >= 3, p)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "stopped by SIGTERM during training" in err, err[-3000:]
    assert not list((out / "checkpoints").glob(".step-*"))
    r = subprocess.run([*launcher, *args, "--out", str(out), "--resume"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in _log(out)
    _assert_same_weights(ref, out)


def test_afqmc_sigterm_inside_dev_evaluation_resumes_bit_identically(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
            "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--eval-batch-size", "8", "--log-interval", "6"]
    ref = tmp_path / "reference"
    assert run_cli(*args, "--out", str(ref)).returncode == 0
    out = tmp_path / "run"
    p = _start(args, out, PAIRTRAIN_TEST_EVAL_DELAY="1.5")  # 3 dev batches of 8, 1.5 s each
    _wait_for(lambda: "[   96/   96]" in _log(out), p)  # epoch 1's last batch is trained: its evaluation runs
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143 and "during evaluation" in err and "at step 6" in err, err
    _resume_and_compare(args, out, ref)
