"""What users meet at the command line: help texts, --quiet, messages, run files' permissions,
offline hub names, threads."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import REPO, run_cli


@pytest.mark.parametrize("app,command", [("afqmc", "train"), ("afqmc", "eval"), ("afqmc", "predict"),
                                         ("afqmc", "export"), ("fashion", "train"), ("fashion", "eval")])
def test_every_option_has_help_and_a_default_or_says_required(app, command):
    r = run_cli(app, command, "--help", env={"COLUMNS": "200"})
    assert r.returncode == 0
    section = r.stdout.split("options:", 1)[1]
    entries = [" ".join(e.split()) for e in re.split(r"\n  (?=-)", section) if e.strip().startswith("--")]
    assert len(entries) >= (4 if command == "export" else 5) and not any("(default: None)" in e for e in entries)
    for entry in entries:  # "--flag METAVAR  help text (default: X)": every option explains itself
        if not entry.startswith(("--help", "--debug")):
            assert len(entry.split()) > 3 and ("default" in entry or "(required)" in entry
                                               or "(optional)" in entry or "off)" in entry), entry
    if command == "train" and app == "afqmc":  # the main job needs no files: AFQMC from the hub
        assert "(default: AFQMC itself from the hub" in next(e for e in entries if e.startswith("--train-file"))


@pytest.fixture(scope="module")
def yes_no_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("yesno")
    rows = [{**r, "label": "yes" if r["label"] == "1" else "no"} for r in make_pairs(64, 0)]
    train = write_jsonl(tmp / "train.json", rows)
    dev = write_jsonl(tmp / "dev.json", rows[:20])
    out = tmp / "run"
    r = subprocess.run([sys.executable, "-m", "afqmc", "train", "--train-file", str(train), "--dev-file", str(dev),
                        "--model", "scratch", "--scratch-size", "tiny", "--labels", "no,yes", "--epochs", "1",
                        "--batch-size", "16", "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True,
                       preexec_fn=lambda: os.umask(0o022))
    return tmp, out, r


def test_quiet_still_prints_the_final_result(yes_no_run):
    _, out, r = yes_no_run
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and "best dev accuracy" in lines[0] and str(out / "best") in lines[0]


def test_run_files_are_readable_by_others_under_the_usual_umask(yes_no_run):
    _, out, _ = yes_no_run
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"


def test_metrics_record_the_learning_rate_used_and_say_which_epoch_each_matrix_is(yes_no_run):
    _, out, _ = yes_no_run
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["lr"] == 5e-4  # the scratch default, not None
    assert "| lr | `0.0005` |" in (out / "report.md").read_text()
    best = next(e for e in m["history"] if e["epoch"] == m["best_epoch"])
    assert m["best_confusion_matrix"] == best["confusion_matrix"]
    assert m["confusion_matrix"] == m["history"][-1]["confusion_matrix"] and m["final_epoch"] == 1


def test_pair_prediction_shows_a_label_name_once(yes_no_run):
    _, out, _ = yes_no_run
    r = run_cli("afqmc", "predict", "--model-dir", str(out / "best"), "--pair", "花呗怎么还款", "花呗如何还款")
    assert r.returncode == 0, r.stderr
    assert "(yes)" not in r.stdout and "(no)" not in r.stdout
    assert "label: yes " in r.stdout or "label: no " in r.stdout


def test_predict_file_without_output_says_what_is_missing(yes_no_run):
    tmp, out, _ = yes_no_run
    r = run_cli("afqmc", "predict", "--model-dir", str(out / "best"), "--file", str(tmp / "dev.json"))
    assert r.returncode == 2 and "needs --output" in r.stderr


def test_unreachable_hub_fails_fast_with_the_offline_help(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(8, 0))
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model",
                "some-org/some-bert", "--out", str(tmp_path / "o"), env=env, timeout=120)
    assert r.returncode == 2 and "unreachable" in r.stderr and "--model scratch" in r.stderr
    assert "Retrying" not in r.stderr and "Traceback" not in r.stderr
    # The main job with no files at all: AFQMC from the hub, which is unreachable and not cached here.
    r = run_cli("afqmc", "train", "--model", "scratch", "--out", str(tmp_path / "o2"), env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "HEAD" not in r.stderr + r.stdout
    assert r.stderr.strip().splitlines()[-1] == (
        "afqmc: error: hf:clue/clue:afqmc@train: cannot load (the Hugging Face hub is unreachable and the dataset "
        "is not in the local cache; on a machine with access run python -c \"import datasets; "
        "datasets.load_dataset('clue/clue', 'afqmc').save_to_disk('data')\", copy data/ here and pass it as "
        "data@train)")


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_ctrl_c_says_how_to_resume(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(256, 0))
    base = make_tiny_bert(tmp_path / "tiny")
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model", str(base),
            "--epochs", "50", "--batch-size", "8", "--out", str(tmp_path / "o")]
    p = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 120
    while not (tmp_path / "o" / "train.log").exists() or "Epoch 1" not in (tmp_path / "o" / "train.log").read_text():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "--resume" in err and "Traceback" not in err


def test_auto_threads_leave_the_busy_cores_to_the_other_process():
    from shared.runtime import set_threads

    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("needs at least 2 cores")
    before = torch.get_num_threads()
    torch.set_num_threads(cores)  # PyTorch's default; an earlier in-process command may have lowered it
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert set_threads(0, adapt=False) is not None and torch.get_num_threads() == cores  # training: a note
        note = set_threads(0, adapt=True)
        assert note is not None and torch.get_num_threads() < cores
        assert set_threads(1, adapt=True) is None and torch.get_num_threads() == 1
    finally:
        busy.kill()
        torch.set_num_threads(before)


def test_resume_needs_no_retyping_and_still_checks_what_is_given(tmp_path, capsys):
    """`train --out X --resume` takes every setting from X/run_config.json; flags given beside it win
    (--epochs extends the run) and are checked against the checkpoint as before."""
    from afqmc.cli import main

    train = write_jsonl(tmp_path / "train.json", make_pairs(32, 0))
    out = str(tmp_path / "run")
    assert main(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
                 "--scratch-size", "tiny", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--out", out,
                 "--quiet"]) == 0
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert json.loads((tmp_path / "run" / "run_config.json").read_text()) == first
    assert main(["train", "--out", out, "--resume", "--epochs", "2"]) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["global_step"] == 4 and m["config"] == {**first, "epochs": 2, "resume": True}
    capsys.readouterr()
    assert main(["train", "--out", out, "--resume", "--lr", "0.1"]) == 2
    assert "settings differ from the checkpoint" in capsys.readouterr().err
    (tmp_path / "run" / "run_config.json").unlink()  # as a run from before the file existed
    assert main(["train", "--out", out, "--resume"]) == 2
    assert (f"--resume {out}: the run predates run_config.json; give --train-file and --dev-file again"
            in capsys.readouterr().err)


def test_a_pretrained_model_gets_an_lr_for_its_width_recorded_as_used(tmp_path):
    from afqmc.cli import main
    from afqmc.commands.config import pretrained_lr

    assert pretrained_lr(768) == pytest.approx(5e-5) and pretrained_lr(384) == pytest.approx(1e-4)
    assert pretrained_lr(1024) == pytest.approx(3.75e-5) and pretrained_lr(4096) == 2e-5  # within 2e-5..1e-4
    train = write_jsonl(tmp_path / "train.json", make_pairs(16, 0))
    out = tmp_path / "run"
    assert main(["train", "--train-file", str(train), "--dev-file", str(train), "--model",
                 str(make_tiny_bert(tmp_path / "tiny")), "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["lr"] == 1e-4 and "lr 0.0001" in (out / "train.log").read_text()  # 32 wide: the cap
