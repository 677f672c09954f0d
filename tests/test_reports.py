"""Run reports: history.csv, curves.png, confusion.png, report.md; eval --report; predict --grid."""

import csv
import importlib.util
import json
import sys
import zlib

import numpy as np
import pytest

import shared.report
from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from fashion.cli import main as fashion_main


# The PNG checks need the `plots` extra; a plain `pip install -e .[dev]` skips them.
needs_plots = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                 reason="needs the plots extra (matplotlib)")


def _png_size(path):
    """Width and height from the PNG header, after checking that the whole file decodes (zlib)."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR", path
    data, at = b"", 8
    while at < len(blob):  # concatenate the IDAT chunks and inflate them: a truncated file fails here
        size, kind = int.from_bytes(blob[at:at + 4], "big"), blob[at + 4:at + 8]
        data += blob[at + 8:at + 8 + size] if kind == b"IDAT" else b""
        at += 12 + size
    zlib.decompress(data)
    return int.from_bytes(blob[16:20], "big"), int.from_bytes(blob[20:24], "big")


@needs_plots
def test_fashion_run_directory_has_reports(fashion_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = fashion_main(["train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "3",
                       "--batch-size", "32", "--log-interval", "4", "--no-download"])
    assert rc == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert stdout.count("epoch 2: train loss") == 1 and "samples/s" in stdout
    rows = list(csv.DictReader(open(out / "history.csv")))
    metrics = json.loads((out / "metrics.json").read_text())
    # 270 samples (30 held out) / 32 = 9 batches per epoch, logged every 4 -> 2 log rows per epoch, + 1 epoch row
    assert [r["kind"] for r in rows].count("log") == 6 and [r["kind"] for r in rows].count("epoch") == 3
    assert [int(r["step"]) for r in rows] == sorted(int(r["step"]) for r in rows)
    last = [r for r in rows if r["kind"] == "epoch"][-1]
    assert float(last["eval_accuracy"]) == pytest.approx(metrics["val_accuracy"])
    for name, min_size in (("curves.png", (600, 300)), ("confusion.png", (400, 400))):
        w, h = _png_size(out / name)
        assert w >= min_size[0] and h >= min_size[1], name
    report = (out / "report.md").read_text()
    assert "- best: epoch " in report and "![training curves](curves.png)" in report
    assert "training images: 270" in report and "validation images: 30" in report and "| epochs | `3` |" in report


def test_runs_without_matplotlib(fashion_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setattr(shared.report, "_warned", False)
    out = tmp_path / "run"
    rc = fashion_main(["train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "2",
                       "--no-download"])
    assert rc == 0
    assert capsys.readouterr().out.count("pip install 'pairtrain[plots]'") == 1
    assert (out / "history.csv").is_file() and (out / "report.md").is_file()
    assert not (out / "curves.png").exists() and not (out / "confusion.png").exists()
    assert "curves.png" not in (out / "report.md").read_text()


@needs_plots
def test_fashion_eval_report_and_predict_grid(fashion_dir, tmp_path, capsys):
    from conftest import synthetic_fashion
    out = tmp_path / "run"
    assert fashion_main(["train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "1",
                         "--no-download", "--quiet"]) == 0
    rc = fashion_main(["eval", "--model-dir", str(out / "best"), "--data-dir", str(fashion_dir),
                       "--report", str(tmp_path / "rep")])
    assert rc == 0
    assert _png_size(tmp_path / "rep" / "confusion.png")[0] >= 400
    per_class = list(csv.DictReader(open(tmp_path / "rep" / "per_class.csv")))
    assert [r["class"] for r in per_class][-1] == "Ankle boot" and len(per_class) == 10
    images, _ = synthetic_fashion(7, 5)
    files = []
    for i, img in enumerate(images):
        np.save(tmp_path / f"i{i}.npy", img)
        files.append(str(tmp_path / f"i{i}.npy"))
    rc = fashion_main(["predict", "--model-dir", str(out / "best"), *files, "--grid", str(tmp_path / "grid.png")])
    assert rc == 0
    w, h = _png_size(tmp_path / "grid.png")
    assert w >= 6 * 150 and h >= 2 * 150  # 7 images: 6 columns, 2 rows


@needs_plots
def test_afqmc_reports_use_pair_class_names(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.json", make_pairs(64, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(20, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                       "--out", str(out), "--epochs", "2", "--batch-size", "16", "--log-interval", "2",
                       "--label-names", "different, same meaning"]) == 0
    assert "labels 0 (different), 1 (same meaning)" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["classes"] == ["different", "same meaning"]
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["kind"] for r in rows].count("epoch") == 2 and [r["kind"] for r in rows].count("log") == 4
    assert _png_size(out / "curves.png")[0] >= 600 and _png_size(out / "confusion.png")[0] >= 300
    assert "dev pairs: 20" in (out / "report.md").read_text()
    assert afqmc_main(["eval", "--model-dir", str(out / "best"), "--file", str(dev), "--report",
                       str(tmp_path / "rep")]) == 0
    per_class = list(csv.DictReader(open(tmp_path / "rep" / "per_class.csv")))
    assert [r["class"] for r in per_class] == ["different", "same meaning"]  # read back from best/
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                       "--out", str(tmp_path / "x"), "--label-names", "a,b,c"]) == 2
    assert "--label-names: 3 names for the 2 labels of " in capsys.readouterr().err


def test_mid_epoch_evaluations_and_max_steps_say_what_happened(tmp_path, capsys):
    """--eval-every-steps 3 and --max-steps 5 over 4 steps per epoch: the header counts the 2 epochs the run
    reaches, evaluations inside an epoch say so on the console and in history.csv, whose steps all count
    from 1 (a log point: the step its batch went into); the result line names the --select-by metric."""
    train = write_jsonl(tmp_path / "train.json", make_pairs(64, 0))
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
                       "--scratch-size", "tiny", "--out", str(out), "--epochs", "3", "--batch-size", "16",
                       "--eval-every-steps", "3", "--max-steps", "5", "--log-interval", "2",
                       "--select-by", "macro_f1"]) == 0
    stdout = capsys.readouterr().out
    assert "Epoch 1/2" in stdout and "Epoch 2/2" in stdout and "/3" not in stdout
    assert stdout.count("epoch 1 (mid-epoch): train loss") == 1 and stdout.count("epoch 1: train loss") == 1
    assert stdout.count("epoch 2 (mid-epoch): train loss") == 1
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [(r["kind"], int(r["step"])) for r in rows] == [("log", 2), ("mid-epoch", 3), ("log", 4), ("epoch", 4),
                                                           ("mid-epoch", 5)]
    assert [e["kind"] for e in json.loads((out / "metrics.json").read_text())["history"]] == [
        "mid-epoch", "epoch", "mid-epoch"]
    result = stdout.strip().splitlines()[-1]
    assert result.startswith("best dev macro-F1 0.") and "(accuracy " in result and "final dev macro-F1" in result
    report = (out / "report.md").read_text()
    assert "5 optimizer steps, 3 evaluation(s) (2 of them mid-epoch)" in report
