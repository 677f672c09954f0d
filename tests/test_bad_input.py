"""Every kind of bad user input: exit code 2, one line on stderr naming the file/field, no traceback."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from fashion.cli import main as fashion_main
from shared.errors import UserError


def _fails(main, argv, capsys, *needles):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture(scope="module")
def afqmc_run(tmp_path_factory):
    """A finished tiny afqmc run to break things against."""
    d = tmp_path_factory.mktemp("afqmc")
    train = write_jsonl(d / "train.json", make_pairs(32, 0))
    dev = write_jsonl(d / "dev.json", make_pairs(16, 1))
    base = make_tiny_bert(d / "tiny")
    rc = afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                     "--out", str(d / "run"), "--epochs", "1", "--batch-size", "16", "--quiet"])
    assert rc == 0
    return d


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    from conftest import synthetic_fashion, write_idx
    d = tmp_path_factory.mktemp("fashion")
    for split, n in (("train", 64), ("t10k", 32)):
        images, labels = synthetic_fashion(n, 0)
        write_idx(d / f"{split}-images-idx3-ubyte", images, 2051)
        write_idx(d / f"{split}-labels-idx1-ubyte", labels, 2049)
    rc = fashion_main(["train", "--data-dir", str(d), "--out", str(d / "run"), "--epochs", "1", "--quiet",
                       "--no-download"])
    assert rc == 0
    return d


def _afqmc_train(d, **kw):
    args = {"--train-file": str(d / "train.json"), "--dev-file": str(d / "dev.json"), "--model": "scratch",
            "--scratch-size": "tiny", "--out": str(d / "new-run"), **kw}
    return ["train", *[x for kv in args.items() for x in kv]]


@pytest.mark.parametrize("content,needle", [
    (None, "file not found"),
    ("DIR", "is a directory"),
    (b"", "no records"),
    (b'{"sentence1": "a", "sentence2": "b", "label": "0"\n', ":1: invalid JSON"),
    (b'[1]\n', ":1: expected a JSON object, found list"),
    (b'3.5\n', ":1: expected a JSON object, found float"),
    (b'{"sentence1": "a", "label": "0"}\n', ":1: missing field 'sentence2'"),
    (b'{"sentence1": "", "sentence2": "b", "label": "0"}\n', ":1: field 'sentence1' is empty"),
    (b'{"sentence1": ["a"], "sentence2": "b", "label": "0"}\n', ":1: field 'sentence1' must be a string"),
    (b'{"sentence1": "a", "sentence2": "b", "label": "yes"}\n', "has 1 distinct label(s) (yes)"),
    (b'{"sentence1": "\xc3\x28", "sentence2": "b", "label": "0"}\n', ":1: invalid UTF-8"),
    (b'{"sentence1": "\\udc80", "sentence2": "b", "label": "0"}\n', ":1: field 'sentence1' contains \\udc80"),
])
def test_afqmc_bad_train_file(afqmc_run, tmp_path, capsys, content, needle):
    bad = tmp_path / "bad.json"
    if content == "DIR":
        bad.mkdir()
    elif content is not None:
        bad.write_bytes(content)
    argv = _afqmc_train(afqmc_run, **{"--train-file": str(bad), "--out": str(tmp_path / "o")})
    _fails(afqmc_main, argv, capsys, "bad.json", needle)


def test_afqmc_eval_needs_labels(afqmc_run, tmp_path, capsys):
    test = write_jsonl(tmp_path / "test.json", make_pairs(4, 2), drop_label=True)
    _fails(afqmc_main, ["eval", "--model-dir", str(afqmc_run / "run" / "best"), "--file", str(test)], capsys,
           "test.json:1: missing field 'label'", "predict")


def _damaged_copy(source: Path, model: Path, damage: str, keep: int) -> Path:
    """Copy a model dir and damage its weights: missing, truncated to ``keep`` bytes, or a flipped byte
    (any other ``damage`` is left to the caller)."""
    import shutil
    shutil.copytree(source, model)
    weights = model / "model.safetensors"
    if damage == "missing":
        weights.unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:keep])
    elif damage == "flipped":
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
    return model


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped", "no-config"])
def test_afqmc_damaged_model_dir(afqmc_run, tmp_path, capsys, damage):
    model = _damaged_copy(afqmc_run / "run" / "best", tmp_path / "model", damage, keep=1000)
    if damage == "no-config":
        (model / "config.json").unlink()
    _fails(afqmc_main, ["predict", "--model-dir", str(model), "--pair", "花呗", "还款"], capsys, str(model))


def test_afqmc_model_dir_missing(tmp_path, capsys):
    _fails(afqmc_main, ["predict", "--model-dir", str(tmp_path / "nope"), "--pair", "a", "b"], capsys, "not found")
    from afqmc import PairScorer  # from Python the error does not speak of a command-line flag
    with pytest.raises(UserError, match=r"^model directory .*nope: not found$"):
        PairScorer.from_dir(tmp_path / "nope")


def test_a_run_directory_given_as_model_dir_names_best(afqmc_run, fashion_run, capsys):
    """`eval --model-dir runs/x` (the run, not its model) says which model directories the run holds."""
    run = afqmc_run / "run"
    _fails(afqmc_main, ["eval", "--model-dir", str(run), "--file", str(afqmc_run / "dev.json")], capsys,
           f"{run}: a run directory, not a model directory; load {run / 'best'} (the model selected",
           f"or {run / 'last'}")
    run = fashion_run / "run"
    _fails(fashion_main, ["eval", "--model-dir", str(run), "--data-dir", str(fashion_run)], capsys,
           f"{run}: a run directory, not a model directory; load {run / 'best'}")


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--epochs", "-2"), ("--batch-size", "0"),
                                        ("--batch-size", "-8")])
def test_afqmc_bad_numbers(afqmc_run, tmp_path, capsys, flag, value):
    _fails(afqmc_main, _afqmc_train(afqmc_run, **{flag: value, "--out": str(tmp_path / "o")}), capsys, flag)


def test_out_is_existing_file_or_unwritable(afqmc_run, fashion_run, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _fails(afqmc_main, _afqmc_train(afqmc_run, **{"--out": str(f)}), capsys, str(f), "not a directory")
    _fails(afqmc_main, _afqmc_train(afqmc_run, **{"--out": str(f / "sub")}), capsys, "cannot write there")
    _fails(fashion_main, ["train", "--data-dir", str(fashion_run), "--out", str(f / "sub")], capsys,
           "cannot write there")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        _fails(fashion_main, ["train", "--data-dir", str(fashion_run), "--out", str(ro / "x")], capsys,
               "cannot write there")


def test_predict_output_problems_leave_no_partial_file(afqmc_run, tmp_path, capsys):
    test = write_jsonl(tmp_path / "test.json", make_pairs(4, 2), drop_label=True)
    model = str(afqmc_run / "run" / "best")
    _fails(afqmc_main, ["predict", "--model-dir", model, "--file", str(test), "--output", str(tmp_path)],
           capsys, "is a directory")
    _fails(afqmc_main, ["predict", "--model-dir", model, "--file", str(test), "--output",
                        str(tmp_path / "no" / "out.json")], capsys, "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_bytes(test.read_bytes() + b"oops\n")
    out = tmp_path / "out.json"
    _fails(afqmc_main, ["predict", "--model-dir", model, "--file", str(bad), "--output", str(out)], capsys,
           "bad.json:5")
    assert not out.exists()


@pytest.mark.parametrize("shape", [(27, 28), (3, 28, 28), (784,)])
def test_fashion_predict_wrong_shape(fashion_run, tmp_path, capsys, shape):
    np.save(tmp_path / "img.npy", np.zeros(shape, dtype=np.uint8))
    _fails(fashion_main, ["predict", "--model-dir", str(fashion_run / "run" / "best"), str(tmp_path / "img.npy")],
           capsys, "img.npy", "expected 28x28")


def test_fashion_predict_unreadable_image(fashion_run, tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"not a png")
    _fails(fashion_main, ["predict", "--model-dir", str(fashion_run / "run" / "best"), str(tmp_path / "x.png")],
           capsys, "x.png", "cannot read image")
    _fails(fashion_main, ["predict", "--model-dir", str(fashion_run / "run" / "best"), str(tmp_path / "none.npy")],
           capsys, "none.npy", "not found")


def test_fashion_predict_skips_an_unreadable_file_and_fails_at_the_end(fashion_run, tmp_path, capsys):
    """One bad file in a batch is reported and skipped; the others are classified and written; exit 2."""
    (tmp_path / "x.png").write_bytes(b"not a png")
    np.save(tmp_path / "a.npy", np.zeros((28, 28), dtype=np.uint8))
    out = tmp_path / "p.csv"
    rc = fashion_main(["predict", "--model-dir", str(fashion_run / "run" / "best"), str(tmp_path / "a.npy"),
                       str(tmp_path / "x.png"), str(tmp_path / "b.npy"), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "x.png: cannot read image" in err and "(skipped)" in err and "b.npy: not found (skipped)" in err
    assert err.strip().splitlines()[-1].endswith("2 of 3 files could not be read (first: " + str(tmp_path / "x.png")
                                                 + ": cannot read image (cannot identify image file "
                                                 + repr(str(tmp_path / "x.png")) + "))")
    rows = out.read_text().splitlines()
    assert len(rows) == 2 and rows[0].startswith("file,class,index,probability,inverted,probabilities.T-shirt/top")
    assert rows[1].startswith(str(tmp_path / "a.npy") + ",")


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped", "bad-config"])
def test_fashion_damaged_model_dir(fashion_run, tmp_path, capsys, damage):
    model = _damaged_copy(fashion_run / "run" / "best", tmp_path / "model", damage, keep=500)
    if damage == "bad-config":
        (model / "MANIFEST.json").unlink()
        (model / "config.json").write_text(json.dumps({"format": "fashion-model/1", "arch": "resnet"}))
    _fails(fashion_main, ["eval", "--model-dir", str(model), "--data-dir", str(fashion_run)], capsys, str(model))


def test_fashion_idx_is_a_directory(fashion_run, tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    (d / "train-images-idx3-ubyte").mkdir()
    _fails(fashion_main, ["train", "--data-dir", str(d), "--out", str(tmp_path / "o"), "--no-download"], capsys,
           "train-images-idx3-ubyte")


def test_debug_shows_traceback(fashion_run, tmp_path):
    from shared.errors import UserError
    with pytest.raises(UserError):
        fashion_main(["--debug", "train", "--epochs", "0", "--out", str(tmp_path / "o")])
