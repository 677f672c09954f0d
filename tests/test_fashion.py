import importlib.util
import json

import numpy as np
import pytest

from conftest import REFERENCE, run_cli, synthetic_fashion, write_idx
from fashion.cli import main
from fashion.data import read_idx
from shared.errors import UserError


def test_train_eval_predict_export_end_to_end(fashion_dir, tmp_path):
    out = tmp_path / "run"
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "3",
                "--batch-size", "32", "--lr", "3e-3", "--log-interval", "5", "--no-download")
    assert r.returncode == 0, r.stderr
    assert "Epoch 1\n-------------------------------" in r.stdout
    # 30 of the 300 training images are held out for validation (--val-size 0.1), which selects best/.
    assert "270 training, 30 validation" in r.stdout
    assert "loss: " in r.stdout and "[  160/  270]" in r.stdout
    assert "Validation Error: \n Accuracy: " in r.stdout and "Done!" in r.stdout
    # The test set is evaluated once, after training, on the selected model.
    assert r.stdout.count("Test Error: \n Accuracy: ") == 1 and "test accuracy of best/" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.9 <= metrics["test_accuracy"] <= 1.0  # the synthetic task is easy
    assert metrics["test_model"] == "best/" and "val_accuracy" in metrics["history"][0]
    assert len(metrics["history"]) == 3 and metrics["train_seconds"] > 0
    assert metrics["config"]["epochs"] == 3
    # Achieved FLOP/s: 3 x the forward's multiply-adds x 2, by hand for the 784-512-256-10 MLP.
    per_example = 3 * 2 * (784 * 512 + 512 * 256 + 256 * 10)
    last = metrics["history"][-1]
    assert last["train_flops_per_example"] == per_example
    assert last["train_flops_per_second"] == pytest.approx(per_example * last["train_samples_per_second"])
    assert "FLOP/s)" in r.stdout
    for d in ("best", "last"):
        assert (out / d / "model.safetensors").is_file() and (out / d / "config.json").is_file()

    # The selected model reproduces the run's test accuracy exactly.
    r = run_cli("fashion", "eval", "--model-dir", str(out / "best"), "--data-dir", str(fashion_dir))
    assert r.returncode == 0, r.stderr
    assert f"Accuracy: {100 * metrics['test_accuracy']:>0.1f}%" in r.stdout
    assert f"accuracy: {100 * metrics['test_accuracy']:.2f}%" in r.stdout
    assert "Ankle boot" in r.stdout and "confusion matrix" in r.stdout

    images, labels = synthetic_fashion(4, seed=7)
    files = []
    for i, img in enumerate(images):
        np.save(tmp_path / f"img{i}.npy", img)
        files.append(str(tmp_path / f"img{i}.npy"))
    has_pillow = importlib.util.find_spec("PIL") is not None
    if not has_pillow:  # without the images extra: .npy works, a PNG says what to install
        (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        r = run_cli("fashion", "predict", "--model-dir", str(out / "best"), str(tmp_path / "x.png"))
        assert r.returncode == 2 and "pairtrain[images]" in r.stderr
    else:
        from PIL import Image
        Image.fromarray(images[0]).save(tmp_path / "img0.png")
        files.append(str(tmp_path / "img0.png"))
    r = run_cli("fashion", "predict", "--model-dir", str(out / "best"), "--threads", "1", *files)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(files) and all("%" in ln for ln in lines)
    from fashion import CLASSES
    assert CLASSES[labels[0]] in lines[0]
    if has_pillow:  # the same image as .npy and as PNG: the same answer
        assert lines[0].split(": ")[1] == lines[-1].split(": ")[1].split("  [")[0]
        assert "  [dark background (0." in lines[-1] and lines[-1].endswith("): as is]")  # auto says what it decided

    r = run_cli("fashion", "export", "--model-dir", str(out / "best"), "--output", str(tmp_path / "m.pth"))
    assert r.returncode == 0, r.stderr
    r = run_cli("fashion", "eval", "--model-dir", str(tmp_path / "m.pth"), "--data-dir", str(fashion_dir))
    assert r.returncode == 2 and "trusted" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("fashion", "eval", "--model-dir", str(tmp_path / "m.pth"), "--trust-pickle",
                "--data-dir", str(fashion_dir))
    assert r.returncode == 0, r.stderr


def test_iterable_loader_with_workers_trains(fashion_dir, tmp_path, capsys):
    rc = main(["train", "--data-dir", str(fashion_dir), "--out", str(tmp_path / "it"), "--epochs", "2",
               "--loader", "iterable", "--num-workers", "2", "--batch-size", "16", "--no-download"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "it" / "metrics.json").read_text())
    assert m["test_accuracy"] > 0.8
    # 270 training samples (30 held out) over 2 workers of 135: ceil(135/16)=9 batches each.
    assert m["global_step"] == 2 * 18


@pytest.mark.parametrize("defect,message", [
    ("magic", "bad magic number"),
    ("truncated", "truncated or corrupt"),
    ("count", "images but"),
    ("shape", "expected 28x28"),
    ("label", "is not a class 0-9"),
])
def test_malformed_idx_gives_clear_error(fashion_dir, tmp_path, capsys, defect, message):
    images, labels = synthetic_fashion(100, 1)
    target = fashion_dir / "t10k-images-idx3-ubyte"
    if defect == "magic":
        write_idx(target, images, 2049)
    elif defect == "truncated":
        write_idx(target, images, 2051)
        target.write_bytes(target.read_bytes()[:-100])
    elif defect == "count":
        write_idx(target, images[:90], 2051)
    elif defect == "shape":
        write_idx(target, np.zeros((100, 32, 32)), 2051)
    else:
        labels[5] = 12
        write_idx(fashion_dir / "t10k-labels-idx1-ubyte", labels, 2049)
    rc = main(["train", "--data-dir", str(fashion_dir), "--out", str(tmp_path / "r"), "--no-download"])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "t10k-" in err and "Traceback" not in err


def test_read_idx_gz_and_raw_agree(tmp_path):
    images, _ = synthetic_fashion(5, 3)
    a = read_idx(write_idx(tmp_path / "a", images, 2051), "images")
    b = read_idx(write_idx(tmp_path / "b.gz", images, 2051, compress=True), "images")
    assert np.array_equal(a, b) and np.array_equal(a, images)
    with pytest.raises(UserError, match="too short"):
        (tmp_path / "c").write_bytes(b"\x00")
        read_idx(tmp_path / "c", "images")


def test_missing_data_offline_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = main(["train", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "r"), "--no-download"])
    assert rc == 2 and "train-images-idx3-ubyte(.gz) not found" in capsys.readouterr().err


def test_mistyped_data_dir_is_an_error_and_is_not_created(tmp_path, capsys):
    rc = main(["train", "--data-dir", str(tmp_path / "typo"), "--out", str(tmp_path / "r")])
    assert rc == 2 and "typo: does not exist" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_eval_defaults_to_the_data_dir_the_model_was_trained_on(fashion_dir, tmp_path, capsys):
    """`fashion eval --model-dir runs/fashion/best` as the README shows: no --data-dir, no download,
    from another working directory; and only the test split is read (the training files are gone)."""
    out = tmp_path / "run"
    assert main(["train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    for f in fashion_dir.glob("train-*"):
        f.unlink()
    r = run_cli("fashion", "eval", "--model-dir", str(out / "best"), "--no-download", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Accuracy:" in r.stdout and f"the test split in {fashion_dir}" in r.stdout


@pytest.mark.parametrize("flag,value", [("--epochs", "0"), ("--batch-size", "-1"), ("--hflip", "1.5")])
def test_bad_numbers_rejected(tmp_path, capsys, flag, value):
    assert main(["train", flag, value, "--out", str(tmp_path / "r")]) == 2
    assert flag in capsys.readouterr().err


def test_out_is_a_file(fashion_dir, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["train", "--data-dir", str(fashion_dir), "--out", str(tmp_path / "f")]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.skipif(not (REFERENCE / "data" / "fashion-mnist").is_dir(), reason="../shared/data absent")
def test_real_data_one_epoch(tmp_path, capsys):
    rc = main(["train", "--data-dir", str(REFERENCE / "data" / "fashion-mnist"), "--out", str(tmp_path / "r"),
               "--epochs", "1", "--no-download", "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["test_accuracy"] >= 0.84


def test_evaluations_inside_epochs_with_select_by_and_patience(fashion_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data-dir", str(fashion_dir), "--out", str(out), "--epochs", "4", "--batch-size", "32",
            "--eval-every-steps", "4", "--select-by", "loss", "--patience", "2", "--no-download", "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    steps = [e["step"] for e in m["history"]]
    assert steps[:4] == [4, 8, 9, 12]  # 9 steps per epoch (270 images): every 4 global steps and at epoch ends
    best = min(m["history"], key=lambda e: e["val_loss"])  # selected on the validation split, never on test
    assert m["best_step"] == best["step"] and m["best_val_loss"] == best["val_loss"]
    if m["stopped_early"]:  # then the last two evaluations were no better than the best
        assert len(steps) - steps.index(best["step"]) - 1 == 2


def test_cnn_channels_last_is_the_same_function_and_round_trips(fashion_dir, tmp_path):
    """The CNN runs channels-last; the same weights in the default layout give the same outputs, and a
    trained CNN's model directory (written contiguous) reproduces the run's accuracy."""
    import copy

    import torch

    from fashion.model import build_model
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    assert model.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(model(x), plain.classifier(plain.features(x)), rtol=1e-5, atol=1e-5)

    out = tmp_path / "cnn"
    r = run_cli("fashion", "train", "--data-dir", str(fashion_dir), "--out", str(out), "--arch", "cnn",
                "--epochs", "1", "--batch-size", "64", "--no-download", "--threads", "1")
    assert r.returncode == 0, r.stderr
    accuracy = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    r = run_cli("fashion", "eval", "--model-dir", str(out / "last"), "--data-dir", str(fashion_dir), "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert f"accuracy: {100 * accuracy:.2f}%" in r.stdout


def test_cnn_model_dirs_written_before_pool_first_load_in_their_own_layout(tmp_path):
    """A directory without ``pool_first`` in config.json (every CNN saved before the pool-first layout)
    loads as conv-BN-ReLU-pool and gives the outputs of the model that wrote it; new ones record True."""
    import torch

    from fashion.infer import load_model, save_model_dir
    from fashion.model import build_model
    torch.manual_seed(0)
    old = build_model("cnn", pool_first=False)
    old.train()(torch.randn(64, 1, 28, 28))  # move the BN running statistics off their initial values
    old.eval()
    del old.pool_first  # the attribute did not exist then, so the config has no such key
    save_model_dir(tmp_path / "old", old, "cnn", 0.2, True)
    assert "pool_first" not in json.loads((tmp_path / "old" / "config.json").read_text())
    loaded, _ = load_model(tmp_path / "old")
    assert loaded.pool_first is False
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), old(x), rtol=0, atol=0)

    save_model_dir(tmp_path / "new", build_model("cnn"), "cnn", 0.2, True)
    assert json.loads((tmp_path / "new" / "config.json").read_text())["pool_first"] is True
    assert load_model(tmp_path / "new")[0].pool_first is True


def test_hflip_mirrors_the_same_images_in_both_loaders_and_defaults_per_arch():
    """Flips are a function of (seed, epoch, image): both loaders mirror the same images, so resume,
    workers and ranks agree; the default is resolved once per architecture (and recorded)."""
    import torch

    from fashion.config import TrainConfig
    from fashion.data import FashionIterable, TensorBatches, epoch_flips
    assert (TrainConfig(arch="cnn").hflip, TrainConfig(arch="cnn").epochs) == (0.5, 8)
    assert (TrainConfig().hflip, TrainConfig().epochs, TrainConfig(arch="tutorial").epochs) == (0.0, 6, 6)
    assert TrainConfig(epochs=2).epochs == 2
    assert TrainConfig(arch="cnn", hflip=0.0, batch_size=64).hflip == 0.0
    a = epoch_flips(4000, 3, 1, 0.5)
    assert torch.equal(a, epoch_flips(4000, 3, 1, 0.5)) and 0.45 < a.float().mean() < 0.55
    assert not torch.equal(a, epoch_flips(4000, 3, 2, 0.5)) and not torch.equal(a, epoch_flips(4000, 4, 1, 0.5))
    assert epoch_flips(4000, 3, 1, 0.0) is None and epoch_flips(4000, 3, 1, 1.0).all()

    x, y = torch.randn(10, 1, 28, 28), torch.arange(10)
    flips = epoch_flips(10, 0, 0, 0.5)
    assert flips.any() and not flips.all()

    def check(batches):
        seen = []
        for xb, yb in batches:
            for image, i in zip(xb, yb.tolist()):
                assert torch.equal(image, x[i].flip(-1) if flips[i] else x[i])
                seen.append(i)
        assert sorted(seen) == list(range(10))

    check(TensorBatches(x, y, [[3, 1, 4], [0, 9, 2, 6], [5, 8, 7]], flips=flips))
    iterable = FashionIterable(x, y, batch_size=4, seed=0, hflip=0.5)
    iterable.set_epoch(0)
    check(iterable)


def test_images_are_framed_like_the_data_set(tmp_path, monkeypatch):
    """16-bit images are scaled by their range (not clipped to white), transparent parts land on the
    data set's black background, and a tall image keeps its aspect ratio, centred."""
    Image = pytest.importorskip("PIL.Image")
    from fashion.images import load_item

    rng = np.random.default_rng(0)
    item = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    item[0, 0] = item[-1, -1] = 0  # a dark corner colour: nothing to trim (the noise reaches every edge)
    Image.fromarray(item).save(tmp_path / "8.png")
    Image.fromarray(item.astype(np.uint16) * 257).save(tmp_path / "16.png")
    eight = load_item(tmp_path / "8.png", "no").pixels
    assert np.allclose(eight, item / 255.0, atol=1e-6)
    assert np.allclose(load_item(tmp_path / "16.png", "no").pixels, eight, atol=1e-6)

    alpha = np.zeros((28, 28), dtype=np.uint8)
    alpha[5:19, 8:15] = 255  # a 14 x 7 opaque item: trimmed to it, then 28 x 14
    rgba = np.dstack([np.full((28, 28, 3), 200, dtype=np.uint8), alpha])  # light grey, mostly transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    for invert, inside in (("no", 200 / 255), ("yes", 1 - 200 / 255), ("auto", 1 - 200 / 255)):
        got = load_item(tmp_path / "a.png", invert)
        assert np.allclose(got.pixels[:, 7:21], inside, atol=2e-3), invert
        assert got.pixels[:, :7].max() == 0 and got.pixels[:, 21:].max() == 0
    assert load_item(tmp_path / "a.png").why == "transparent background"

    Image.fromarray(np.full((56, 28), 255, dtype=np.uint8)).save(tmp_path / "tall.png")
    tall = load_item(tmp_path / "tall.png", "no").pixels  # uniform: nothing to trim to
    assert np.allclose(tall[:, 7:21], 1.0, atol=1e-3) and tall[:, :7].max() == 0 and tall[:, 21:].max() == 0
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # Pillow refuses images over twice this (decompression bombs)
    with pytest.raises(UserError, match=r"tall\.png: cannot read image \(Image size \(1568 pixels\) exceeds"):
        load_item(tmp_path / "tall.png", "no")


def test_a_photo_on_white_is_trimmed_and_negated_like_fashion_mnist(tmp_path):
    """A dark 20 x 10 item in the middle of a 100 x 100 white photo (with slight noise in the margin)
    becomes a light item filling the frame's height on black, as the data set's items are; the same photo
    on black is left as is. A margin within 5% of the corner colour is trimmed."""
    Image = pytest.importorskip("PIL.Image")
    from fashion.images import load_item

    rng = np.random.default_rng(1)
    photo = (250 - rng.integers(0, 8, (100, 100))).astype(np.uint8)  # white, within 5% of the corners
    photo[40:60, 45:55] = 30
    Image.fromarray(photo).save(tmp_path / "white.png")
    got = load_item(tmp_path / "white.png")
    assert got.inverted and got.why.startswith("light background")
    assert got.pixels[2:26, 9:19].min() > 0.85 and got.pixels[:, :6].max() < 0.05  # 28 x 14, centred
    Image.fromarray(255 - photo).save(tmp_path / "black.png")
    dark = load_item(tmp_path / "black.png")
    assert not dark.inverted and dark.why.startswith("dark background")
    assert np.allclose(dark.pixels, got.pixels, atol=0.05)
