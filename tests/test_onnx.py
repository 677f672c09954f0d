"""ONNX Runtime behind eval, predict, serve and PairScorer (afqmc.model.onnx_backend): a tiny model of each
encoder family exported and scored by both backends gives the same labels, fp32 probabilities within
1e-4; the missing, stale and corrupt cases and a missing onnxruntime each give their one-line error."""

import json
import shutil
import sys

import numpy as np
import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, write_jsonl
from encoder_checkpoints import FAMILIES, make_family_checkpoint

pytest.importorskip("onnxruntime", reason="the onnx extra")
pytest.importorskip("onnxscript", reason="the onnx extra")


def _trained(tmp_path, family):
    base = make_family_checkpoint(tmp_path / "base", family)
    train = write_jsonl(tmp_path / "train.json", make_pairs(48, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                       "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--out", str(tmp_path / "run"),
                       "--quiet"]) == 0
    return tmp_path / "run" / "best", dev


@pytest.mark.parametrize("family", [f if f == "bert" else pytest.param(f, marks=pytest.mark.slow)
                                    for f in FAMILIES])
def test_every_family_exports_and_both_backends_agree(family, tmp_path, capsys):
    from afqmc.model.scorer import PairScorer

    best, dev = _trained(tmp_path, family)
    assert afqmc_main(["export", "--model-dir", str(best), "--int8"]) == 0
    out = capsys.readouterr().out
    assert f"exported {best / 'onnx' / 'model.onnx'}, {best / 'onnx' / 'model.int8.onnx'}" in out
    record = json.loads((best / "onnx" / "export.json").read_text())
    assert set(record["files"]) == {"model.onnx", "model.int8.onnx"} and len(record["weights_sha256"]) == 64
    pairs = [(r["sentence1"], r["sentence2"]) for r in make_pairs(24, 1)] + [("一", "二")]  # batch 1 too
    torch_probs = PairScorer.from_dir(best, precision="fp32").probabilities(pairs)
    onnx_probs = PairScorer.from_dir(best, backend="onnx").probabilities(pairs)
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4
    assert PairScorer.from_dir(best, backend="onnx").probabilities(pairs[:1]).shape == (1, 2)
    labels = {}
    for backend in (["--precision", "fp32"], ["--backend", "onnx"], ["--backend", "onnx", "--int8"]):
        assert afqmc_main(["predict", "--model-dir", str(best), "--file", str(dev), "--output",
                           str(tmp_path / "p.json"), *backend]) == 0
        labels[" ".join(backend)] = (tmp_path / "p.json").read_text()
    assert labels["--precision fp32"] == labels["--backend onnx"]
    int8 = [json.loads(x)["label"] for x in labels["--backend onnx --int8"].splitlines()]
    fp32 = [json.loads(x)["label"] for x in labels["--precision fp32"].splitlines()]
    int8_probs = PairScorer.from_dir(best, backend="onnx", int8=True).probabilities(pairs)
    assert np.abs(int8_probs - torch_probs).max() < 0.05
    # int8 may flip a pair that fp32 puts near 0.5 (a barely trained model has many); never a clear one.
    clear = np.abs(torch_probs[:24, 1] - 0.5) > 0.05
    assert [a for a, c in zip(int8, clear) if c] == [b for b, c in zip(fp32, clear) if c]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    best, dev = _trained(d, "bert")
    assert afqmc_main(["export", "--model-dir", str(best)]) == 0
    return best, dev


def _fails(argv, capsys, *needles):
    rc = afqmc_main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_missing_stale_and_corrupt_onnx_files_are_one_line_errors(exported, tmp_path, capsys):
    from afqmc.model.modeldir import load_model_dir, save_model_dir

    best, dev = exported
    predict = ["predict", "--pair", "花呗", "还款", "--backend", "onnx"]
    _fails([*predict, "--model-dir", str(best), "--int8"], capsys, "model.int8.onnx: no ONNX model (int8)",
           f"run `afqmc export --model-dir {best} --int8`")
    tokenizer, model, _ = load_model_dir(best)  # other weights, saved as a directory of their own
    model.classifier.bias.data += 1.0
    save_model_dir(tmp_path / "other", model, tokenizer)
    shutil.copytree(best / "onnx", tmp_path / "other" / "onnx")
    _fails([*predict, "--model-dir", str(tmp_path / "other")], capsys, "model.onnx: stale, exported from other "
           "weights than", "run `afqmc export --model-dir")
    shutil.copytree(best, tmp_path / "corrupt")
    onnx_file = tmp_path / "corrupt" / "onnx" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    _fails([*predict, "--model-dir", str(tmp_path / "corrupt")], capsys, "model.onnx: contents do not match",
           "(truncated or corrupt)")
    _fails(["predict", "--pair", "花呗", "还款", "--int8", "--model-dir", str(best)], capsys,
           "--int8 needs --backend onnx")


def test_missing_onnxruntime_says_what_to_install(exported, capsys, monkeypatch):
    best, _ = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # importing it now raises ImportError
    _fails(["eval", "--model-dir", str(best), "--file", str(exported[1]), "--backend", "onnx"], capsys,
           "--backend onnx needs onnxruntime: pip install 'pairtrain[onnx]'")
    _fails(["export", "--model-dir", str(best)], capsys, "afqmc export needs onnx, onnxscript and onnxruntime")
