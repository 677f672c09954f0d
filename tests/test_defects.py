"""Issue 24: silent wrong answers and tracebacks found by trying the product as a new user would.

Each test failed on the code before the fix (the comment above it says how).
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from afqmc.cli import build_parser as afqmc_parser
from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import REPO, run_cli, synthetic_fashion
from fashion.cli import build_parser as fashion_parser
from shared.atomic import verify_dir
from test_resume import _assert_same_weights


def _write_csv(path, header, rows):
    lines = ([",".join(header)] if header else []) + [f"{r['sentence1']},{r['sentence2']},{r['label']}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# 1. A header `query,candidate,label` (no known sentence-column names) was trained as a data row: 3 classes.
def test_csv_header_with_unknown_text_names_is_a_header(tmp_path, capsys):
    train = _write_csv(tmp_path / "oppo_train.csv", ["query", "candidate", "label"], make_pairs(64, 0))
    dev = _write_csv(tmp_path / "oppo_dev.csv", ["query", "candidate", "label"], make_pairs(16, 1))
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                       "--scratch-size", "tiny", "--max-steps", "2", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "best" / "config.json").read_text())["id2label"] == {"0": "0", "1": "1"}
    assert "sentence columns 'query' and 'candidate'" in (out / "train.log").read_text()  # said at start-up
    assert afqmc_main(["predict", "--model-dir", str(out / "best"), "--file", str(dev),
                       "--output", str(tmp_path / "p.jsonl")]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 16  # the header is not a pair either


@pytest.mark.parametrize("header", [["q", "c", "y"], ["Query", "Candidate", "Label"]])
def test_header_line_is_never_learnt(tmp_path, header):
    train = _write_csv(tmp_path / "train.csv", header, make_pairs(40, 0))
    dev = _write_csv(tmp_path / "dev.csv", None, make_pairs(8, 1))
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                "--scratch-size", "tiny", "--max-steps", "1", "--out", str(tmp_path / "run"), "--quiet")
    if header[2] == "y":  # names nobody could know: refused in one line, saying what to pass
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert f"{train}:1: looks like a header" in r.stderr and "--text-columns" in r.stderr
    else:  # a label column named in any case makes the line a header
        assert r.returncode == 0, r.stderr
        assert "labels 0, 1 (from the training data)" in (tmp_path / "run" / "train.log").read_text()


# 3. Trained with --max-length 16, eval used 128 (and columns given to train had to be given again).
def test_max_length_and_columns_travel_with_the_model(tmp_path, capsys):
    rows = make_pairs(64, 0)
    train = tmp_path / "train.csv"
    train.write_text("q1,q2,y\n" + "".join(f"{r['sentence1']},{r['sentence2']},{r['label']}\n" for r in rows))
    dev = tmp_path / "dev.csv"
    dev.write_text("q1,q2,y\n" + "".join(f"{r['sentence1']},{r['sentence2']},{r['label']}\n"
                                         for r in make_pairs(16, 1)))
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                       "--scratch-size", "tiny", "--max-steps", "3", "--max-length", "8", "--text-columns", "q1,q2",
                       "--label-column", "y", "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "best" / "config.json").read_text())["pairtrain_inference"]
    assert saved == {"max_length": 8, "text_columns": ["q1", "q2"], "label_column": "y", "label_names": None}
    from afqmc.model.scorer import PairScorer

    scorer = PairScorer.from_dir(out / "best")
    assert scorer.max_length == 8 and all(len(f["input_ids"]) <= 8 for f in scorer.encode(
        [__import__("afqmc.data.batches", fromlist=["Pair"]).Pair(0, None, "花呗怎么还款了", "借呗可以分期吗", None)]))
    assert PairScorer.from_dir(out / "best", max_length=32).max_length == 32  # an explicit value wins
    capsys.readouterr()
    # No column flags: the model directory says q1/q2/y, and the accuracy is the one training measured at 8.
    assert afqmc_main(["eval", "--model-dir", str(out / "best"), "--file", str(dev)]) == 0
    best = json.loads((out / "metrics.json").read_text())["best_dev_accuracy"]
    assert f"accuracy: {100 * best:.2f}%" in capsys.readouterr().out


# 2. The exported whole model expected standardised pixels; loaded the tutorial's way it scored 67.55%.
def test_exported_model_takes_tutorial_pixels(fashion_dir, tmp_path):
    out = tmp_path / "run"
    assert run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "2",
                   "--no-download", "--quiet").returncode == 0
    r = run_cli("fashion", "export", "--model-dir", str(out / "best"), "--output", str(tmp_path / "m.pth"),
                "--threads", "1")
    assert r.returncode == 0, r.stderr
    model = torch.load(tmp_path / "m.pth", weights_only=False).eval()  # the tutorial's way
    images, labels = synthetic_fashion(200, seed=5)
    pixels = torch.from_numpy(images).float().div(255.0).unsqueeze(1)  # what ToTensor() gives
    from fashion.infer import load_model
    from fashion.data import to_tensor

    net, _ = load_model(out / "best")
    with torch.no_grad():
        exported = model(pixels)
        reference = net(to_tensor(images, True))
    assert torch.allclose(exported, reference, atol=1e-5)
    assert (exported.argmax(1).numpy() == labels).mean() >= 0.85
    r = run_cli("fashion", "eval", "--model-dir", str(tmp_path / "m.pth"), "--trust-pickle", "--data-dir",
                str(fashion_dir))
    r_dir = run_cli("fashion", "eval", "--model-dir", str(out / "best"), "--data-dir", str(fashion_dir))
    assert r.returncode == 0 and r_dir.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("accuracy: "))
    assert line in r_dir.stdout  # the same accuracy as the model directory
    assert "pixels in [0, 1]" in run_cli("fashion", "export", "--help").stdout


# 4. best/ was selected on the test set.
def test_fashion_selects_on_a_seeded_validation_split(fashion_dir, tmp_path):
    from fashion.data import validation_split

    keep, held = validation_split(300, 0.1, 42)
    assert len(held) == 30 and len(keep) == 270 and not set(keep.tolist()) & set(held.tolist())
    assert torch.equal(held, validation_split(300, 0.1, 42)[1])  # seeded: a resumed run holds out the same
    assert not torch.equal(held, validation_split(300, 30, 7)[1])
    out = tmp_path / "none"
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "2",
                "--val-size", "0", "--no-download", "--quiet")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["best_step"] == m["global_step"] and m["config"]["val_size"] == 0  # best/ = last/
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(tmp_path / "p"), "--val-size", "0",
                "--patience", "2", "--no-download")
    assert r.returncode == 2 and "--patience needs a validation split" in r.stderr


# 6. `afqmc serve --help` crashed on a bare "25%" in a help string.
@pytest.mark.parametrize("parser", [afqmc_parser, fashion_parser])
def test_help_renders_for_every_subcommand(parser, capsys):
    p = parser()
    commands = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name in commands:
        with pytest.raises(SystemExit) as e:
            p.parse_args([name, "--help"])
        assert e.value.code == 0, name
        assert "--threads" in capsys.readouterr().out, name  # 9. every command has --threads


def _train_under_file_size_limit(args, out, limit):
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", *args, "--out", str(out), "--resume"], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=env, preexec_fn=limit_file_size)


# 7. A full disk inside a library writer (safetensors, torch.save) was an internal error with a traceback.
@pytest.mark.slow
@pytest.mark.parametrize("app,fails", [("afqmc", "model"), ("afqmc", "checkpoint"), ("fashion", "checkpoint")])
def test_failed_write_is_one_line_and_resume_is_bit_identical(tmp_path, fashion_dir, app, fails):
    if app == "afqmc":
        train = write_jsonl(tmp_path / "train.json", make_pairs(64, 0))
        dev = write_jsonl(tmp_path / "dev.json", make_pairs(16, 1))
        args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model",
                str(make_tiny_bert(tmp_path / "tiny")), "--epochs", "2", "--batch-size", "16", "--lr", "1e-3",
                "--save-every-steps", "3", "--quiet"]
    else:
        args = ["fashion", "train", "--data-dir", str(fashion_dir), "--epochs", "2", "--batch-size", "64",
                "--save-every-steps", "3", "--no-download", "--quiet"]
    ref = tmp_path / "ref"
    assert run_cli(*args, "--out", str(ref)).returncode == 0
    model_size = (ref / "last" / "model.safetensors").stat().st_size
    ckpt_size = max(p.stat().st_size for p in (ref / "checkpoints").rglob("*.pt"))
    assert ckpt_size > 2 * model_size
    limit = model_size // 2 if fails == "model" else (model_size + ckpt_size) // 2
    out = tmp_path / "run"
    r = _train_under_file_size_limit(args, out, limit)
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "File too large" in r.stderr and "internal error" not in r.stderr
    assert "the last complete checkpoint is" in r.stderr
    assert not list(out.rglob(".*.tmp-*"))  # nothing half-written left behind
    for ckpt in (out / "checkpoints").glob("step-*"):
        verify_dir(ckpt)
    r = run_cli(*args, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    _assert_same_weights(ref, out)


# 8. Forked DataLoader workers inherited the run directory's flock and held it after the trainer's SIGKILL.
def test_lock_is_not_held_by_children_of_a_killed_trainer(tmp_path):
    code = ("import os, sys, time; from pathlib import Path; from shared.rundir import lock_run_dir; "
            "lock_run_dir(Path(sys.argv[1]))\n"
            "if os.fork() == 0:\n    time.sleep(60); os._exit(0)\n"
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from shared.errors import UserError
        from shared.rundir import lock_run_dir

        with pytest.raises(UserError, match=f"another training \\(pid {holder.pid}\\)"):
            os.close(lock_run_dir(tmp_path))  # held while the trainer lives
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        children = subprocess.run(["pgrep", "-s", str(holder.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the forked child should still be alive"
        started = time.monotonic()
        os.close(lock_run_dir(tmp_path))  # at once, with the child still alive
        assert time.monotonic() - started < 1
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(holder.pid)])


@pytest.mark.slow
def test_resume_right_after_sigkill_with_streaming_workers_alive(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(400, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(16, 1))
    out = tmp_path / "run"
    args = [sys.executable, "-m", "afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model",
            "scratch", "--scratch-size", "tiny", "--epochs", "50", "--batch-size", "8", "--save-every-steps", "5",
            "--streaming", "--num-workers", "2", "--quiet", "--out", str(out)]
    trainer = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "checkpoints").glob("step-*")) and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(trainer.pid)], capture_output=True, text=True).stdout.split()
        os.kill(trainer.pid, signal.SIGKILL)  # the trainer only: its workers live on for a while
        trainer.wait()
        assert workers
        r = subprocess.run(args[:-2] + ["--out", str(out), "--resume", "--max-steps", "1"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert "another training" not in r.stderr, r.stderr
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(trainer.pid)])


# 10. A .parquet file that is not Parquet printed the library's own log line before our one-line error.
def test_bad_parquet_is_one_line(tmp_path):
    bad = tmp_path / "train.parquet"
    bad.write_text("sentence1,sentence2,label\n")
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(8, 1))
    r = run_cli("afqmc", "train", "--train-file", str(bad), "--dev-file", str(dev), "--model", "scratch",
                "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert r.stderr.startswith(f"afqmc: error: {bad}: cannot read as parquet")


def test_scorer_says_which_threshold_decided(tmp_path):
    from afqmc.model.scorer import PairScorer

    train = write_jsonl(tmp_path / "train.json", make_pairs(32, 0))
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
                       "--scratch-size", "tiny", "--max-steps", "1", "--out", str(out), "--quiet"]) == 0
    result = PairScorer.from_dir(out / "best").predict([("花呗", "借呗")])[0]
    assert result["threshold"] is None and np.isclose(sum(result["probabilities"].values()), 1.0)
