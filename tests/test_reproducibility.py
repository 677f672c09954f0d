"""Same seed -> same run, for every model source: the scratch vocabulary is a deterministic function
of the data, the resumed run uses the tokenizer saved in its checkpoint, saved files are byte-stable."""

import hashlib
import json
import random
import subprocess
import sys

import pytest
import torch

from afqmc_helpers import make_pairs, write_jsonl
from conftest import REPO, run_cli
from shared.checkpoint import load_weights


def _latin_heavy_texts() -> list[str]:
    """Text with many equally frequent Latin sub-words: the WordPiece trainer broke such ties in
    hash-map order (different vocabularies from run to run)."""
    rng = random.Random(1)
    return [r["sentence1"] + " " + " ".join("".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 6)))
                                            for _ in range(3)) for r in make_pairs(300, 0)]


@pytest.mark.slow  # builds models or starts processes; CI runs it
def test_scratch_vocabulary_is_the_same_in_every_process(tmp_path):
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(_latin_heavy_texts()), encoding="utf-8")
    code = ("import hashlib, json, sys; from afqmc.model.scratch_tokenizer import train_char_tokenizer; "
            "t = train_char_tokenizer(json.load(open(sys.argv[1], encoding='utf-8'))); "
            "print(len(t), hashlib.sha256(t.backend_tokenizer.to_str().encode()).hexdigest())")
    outputs = {subprocess.run([sys.executable, "-c", code, str(texts)], capture_output=True, text=True, cwd=REPO,
                              check=True).stdout for _ in range(4)}
    assert len(outputs) == 1, outputs


def _scratch_args(tmp_path, *extra: str) -> list[str]:
    train = write_jsonl(tmp_path / "train.json", [
        {**r, "sentence1": r["sentence1"] + " " + t.split(" ", 1)[1]} for r, t in zip(make_pairs(96, 0),
                                                                                      _latin_heavy_texts())])
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    return ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
            "--scratch-size", "tiny", "--epochs", "2", "--batch-size", "16", "--quiet", *extra]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_two_scratch_runs_with_the_same_seed_are_identical_to_the_byte(tmp_path):
    args = _scratch_args(tmp_path)
    for name in ("a", "b"):
        r = run_cli(*args, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
    for d in ("best", "last"):  # weights, tokenizer, config and manifest: byte for byte
        files = sorted(p.name for p in (tmp_path / "a" / d).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "b" / d).iterdir())
        for f in files:
            assert _digest(tmp_path / "a" / d / f) == _digest(tmp_path / "b" / d / f), f"{d}/{f}"
    ha = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]
    hb = json.loads((tmp_path / "b" / "metrics.json").read_text())["history"]
    assert [e["dev_accuracy"] for e in ha] == [e["dev_accuracy"] for e in hb]


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_resumed_scratch_run_uses_the_tokenizer_of_its_checkpoint(tmp_path):
    """Resume with a training file whose text would give another vocabulary: the run keeps the one it
    started with (a retrained one would scramble the token ids the embeddings were trained on)."""
    args = _scratch_args(tmp_path)
    out = tmp_path / "run"
    assert run_cli(*args, "--out", str(out), "--max-steps", "3").returncode == 0
    started_with = (out / "last" / "tokenizer.json").read_bytes()
    other = write_jsonl(tmp_path / "other.json", [{**r, "sentence1": r["sentence1"] + " xyzzy qwerty"}
                                                  for r in make_pairs(96, 5)])
    resumed_args = [a if a != str(tmp_path / "train.json") else str(other) for a in args]
    r = run_cli(*resumed_args, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert (out / "last" / "tokenizer.json").read_bytes() == started_with


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_resume_can_extend_a_finished_run_but_not_shorten_it(tmp_path):
    args = _scratch_args(tmp_path)
    out = tmp_path / "run"
    assert run_cli(*args, "--out", str(out)).returncode == 0
    r = run_cli(*[a if a != "2" else "3" for a in args], "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in m["history"]] == [1, 2, 3] and m["epochs_completed"] == 3
    assert "new horizon" in (out / "train.log").read_text()
    r = run_cli(*[a if a != "2" else "1" for a in args], "--out", str(out), "--resume")
    assert r.returncode == 2 and "already completed 3 epoch(s)" in r.stderr


def test_extended_schedule_continues_at_the_longer_schedules_rate():
    """The schedule rebuilt for a new horizon and replayed gives the rate the longer schedule has there."""
    from transformers import get_linear_schedule_with_warmup

    from shared.training import _replay_schedule

    def sched(total):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        return opt, get_linear_schedule_with_warmup(opt, 2, total)

    opt, s = sched(30)
    _replay_schedule(s, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx((30 - 10) / (30 - 2))


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_safetensors_files_are_byte_stable(tmp_path):
    from shared.checkpoint import save_weights

    sd = {"b": torch.arange(4.0), "a": torch.ones(2, 2)}
    code = ("import sys, torch; from shared.checkpoint import save_weights; "
            "save_weights({'b': torch.arange(4.0), 'a': torch.ones(2, 2)}, sys.argv[1])")
    for i in range(4):  # metadata order used to change from process to process
        subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{i}.safetensors")], cwd=REPO, check=True)
    assert len({_digest(tmp_path / f"{i}.safetensors") for i in range(4)}) == 1
    save_weights(sd, tmp_path / "here.safetensors")
    assert all(torch.equal(load_weights(tmp_path / "here.safetensors")[k], v) for k, v in sd.items())
