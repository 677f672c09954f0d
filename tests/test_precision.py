"""--precision auto decides by a timing at the model's own shape, says how, and a resumed run keeps
the precision it began with (issue 25)."""

import json

import pytest
import torch
from torch import nn

from afqmc_helpers import make_pairs, write_jsonl
from conftest import run_cli
from shared import precision
from shared.checkpoint import latest_checkpoint
from shared.precision import choose_precision

CPU = torch.device("cpu")
MODEL = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 64), nn.Linear(64, 4))


def test_forced_and_resumed_precisions_are_not_timed(monkeypatch):
    monkeypatch.setattr(precision, "time_linear", lambda *a: pytest.fail("timed although forced"))
    assert choose_precision(CPU, "fp32", MODEL, 32).autocast is None
    assert choose_precision(CPU, "bf16", MODEL, 32).autocast is torch.bfloat16
    resumed = choose_precision(CPU, "auto", MODEL, 32, resumed="bf16")
    assert resumed.autocast is torch.bfloat16 and "resumes" in resumed.how
    assert resumed.record() == {"asked": "auto", "chosen": "bf16", "how": resumed.how}


def test_bf16_needs_a_clear_margin():
    assert precision.bf16_pays(fp32_seconds=1.0, bf16_seconds=0.5)
    assert precision.bf16_pays(fp32_seconds=1.25, bf16_seconds=1.0)
    assert not precision.bf16_pays(fp32_seconds=1.2, bf16_seconds=1.0)  # not worth bf16's rounding
    assert not precision.bf16_pays(fp32_seconds=1.0, bf16_seconds=8.0)  # emulated bf16 (AVX2)


def test_auto_times_the_largest_linear_layer_at_the_batch_rows(monkeypatch, tmp_path):
    seen = []

    def fake(in_features, out_features, rows, backward):
        seen.append((in_features, out_features, rows, backward))
        return 3.0, 1.0

    monkeypatch.setenv("PAIRTRAIN_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "time_linear", fake)
    chosen = choose_precision(CPU, "auto", MODEL, 128)
    assert seen == [(16, 64, 128, True)] and chosen.name == "bf16"
    assert "16x64" in chosen.how and "3.00x" in chosen.how
    choose_precision(CPU, "auto", MODEL, 10**6, backward=False)
    assert seen[-1] == (16, 64, precision.PROBE_MAX_ROWS, False)
    assert choose_precision(CPU, "auto", nn.ReLU(), 8).name == "fp32"  # nothing to time


def test_a_timing_is_taken_once_and_remembered(monkeypatch, tmp_path):
    """Two runs of one command must compute alike: the second reads the first one's timing."""
    monkeypatch.setenv("PAIRTRAIN_CACHE", str(tmp_path / "cache"))
    calls = []
    monkeypatch.setattr(precision, "time_linear", lambda *a: calls.append(a) or (1.3, 1.0))
    first = choose_precision(CPU, "auto", MODEL, 100)
    monkeypatch.setattr(precision, "time_linear", lambda *a: calls.append(a) or (1.0, 1.0))
    second = choose_precision(CPU, "auto", MODEL, 120)  # 100 and 120 rows both time at 128
    assert len(calls) == 1 and first.name == second.name == "bf16" and "remembered in" in second.how
    assert "128x16x64" in second.how
    choose_precision(CPU, "auto", MODEL, 16)  # another shape: timed
    assert len(calls) == 2
    precision.timings_file().write_text("{not json")  # a damaged memory is timed again, then rewritten
    assert choose_precision(CPU, "auto", MODEL, 100).name == "fp32" and len(calls) == 3
    assert json.loads(precision.timings_file().read_text())


def test_without_a_writable_cache_every_run_times(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("PAIRTRAIN_CACHE", str(tmp_path / "file" / "cache"))  # a path under a file
    calls = []
    monkeypatch.setattr(precision, "time_linear", lambda *a: calls.append(a) or (3.0, 1.0))
    assert all(choose_precision(CPU, "auto", MODEL, 64).name == "bf16" for _ in range(2)) and len(calls) == 2


def test_the_real_probe_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    fp32, bf16 = precision.time_linear(32, 64, 16, backward=True)
    assert fp32 > 0 and bf16 > 0 and torch.equal(before, torch.get_rng_state())


def _train(app: str, out, data, *more: str):
    if app == "fashion":
        args = ["--data-dir", str(data), "--batch-size", "32", "--no-download"]
    else:
        train = write_jsonl(data / "train.json", make_pairs(64, 0))
        dev = write_jsonl(data / "dev.json", make_pairs(16, 1))
        args = ["--train-file", str(train), "--dev-file", str(dev), "--model", "scratch", "--scratch-size", "tiny",
                "--batch-size", "16"]
    r = run_cli(app, "train", *args, "--out", str(out), "--threads", "1", *more)
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.parametrize("app", ["fashion", pytest.param("afqmc", marks=pytest.mark.slow)])
def test_the_choice_is_in_metrics_json_and_kept_on_resume(app, tmp_path, fashion_dir):
    """A run says how it chose (start-up line, metrics.json); its checkpoint keeps what it chose, and
    ``--resume`` computes in that, without timing again."""
    out = tmp_path / "run"
    r = _train(app, out, fashion_dir if app == "fashion" else tmp_path, "--epochs", "1")
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = metrics["precision"]
    assert chosen["asked"] == "auto" and chosen["chosen"] in ("fp32", "bf16") and "timed a" in chosen["how"]
    assert chosen["how"] in r.stdout + r.stderr
    _, ckpt = latest_checkpoint(out / "checkpoints")
    assert ckpt["extra"]["precision"] == chosen["chosen"]
    r = _train(app, out, fashion_dir if app == "fashion" else tmp_path, "--epochs", "2", "--resume")
    assert "as the run it resumes began" in r.stdout + r.stderr
    assert json.loads((out / "metrics.json").read_text())["precision"]["chosen"] == chosen["chosen"]
