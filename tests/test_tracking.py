"""--report-to tensorboard: real event files with history.csv's scalars, read back with TensorBoard's reader."""

import csv
import sys

import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, write_jsonl

pytest.importorskip("tensorboard")


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _train(tmp_path, *extra):
    train = write_jsonl(tmp_path / "train.json", make_pairs(48, 0))
    return afqmc_main(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
                       "--scratch-size", "tiny", "--out", str(tmp_path / "run"), "--batch-size", "16",
                       "--log-interval", "1", "--eval-every-steps", "2", "--report-to", "tensorboard", "--quiet",
                       *extra])


def test_event_files_hold_the_history_and_a_resume_does_not_repeat_steps(tmp_path):
    assert _train(tmp_path, "--epochs", "1") == 0
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(tmp_path / "run" / "tensorboard")) as w:  # as a process killed after its checkpoint
        w.add_scalar("train/loss", 99.0, 4)  # would have logged: the resumed run must purge it
    assert afqmc_main(["train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    got = _scalars(tmp_path / "run" / "tensorboard")
    logs = [r for r in rows if r["kind"] == "log"]
    evals = [r for r in rows if r["kind"] != "log"]
    assert [s for s, _ in got["train/loss"]] == [int(r["step"]) for r in logs] == list(range(1, 7))
    assert 99.0 not in [v for _, v in got["train/loss"]]
    assert [v for _, v in got["train/loss"]] == pytest.approx([float(r["train_loss"]) for r in logs], rel=1e-6)
    assert [v for _, v in got["train/lr"]] == pytest.approx([float(r["lr"]) for r in logs], rel=1e-6)
    for tag, key in (("dev/accuracy", "eval_accuracy"), ("dev/loss", "eval_loss"), ("dev/macro_f1", "eval_macro_f1"),
                     ("train/mean_loss", "train_loss")):
        assert [s for s, _ in got[tag]] == [int(r["step"]) for r in evals] == [2, 3, 4, 6], tag  # 3 steps/epoch
        assert [v for _, v in got[tag]] == pytest.approx([float(r[key]) for r in evals], rel=1e-6), tag


def test_missing_tensorboard_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # importing it now raises ImportError
    assert _train(tmp_path, "--epochs", "1") == 2
    assert "--report-to tensorboard needs the tensorboard package: pip install 'pairtrain[tensorboard]'" in \
        capsys.readouterr().err


def test_a_regression_run_reports_its_correlations(tmp_path):
    train = tmp_path / "train.json"
    train.write_text("".join(f'{{"sentence1": "花呗{i}", "sentence2": "还款{i % 3}", "score": {i % 7 / 2}}}\n'
                             for i in range(32)), encoding="utf-8")
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
                       "--scratch-size", "tiny", "--out", str(tmp_path / "run"), "--batch-size", "16", "--epochs", "1",
                       "--label-column", "score", "--task", "regression", "--report-to", "tensorboard",
                       "--quiet"]) == 0
    got = _scalars(tmp_path / "run" / "tensorboard")
    assert {"dev/pearson", "dev/spearman", "dev/mse", "dev/loss"} <= set(got) and "dev/accuracy" not in got
