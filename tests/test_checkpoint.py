import os

import pytest
import torch
from torch import nn

from shared.atomic import atomic_dir, atomic_write, link_dir, verify_dir
from shared.checkpoint import (latest_checkpoint, load_training_checkpoint, load_weights, load_whole_model,
                               save_training_checkpoint, save_weights, save_whole_model)
from shared.errors import CheckpointError


def _state_dict():
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(4, 3, generator=g)
    return {
        "w": torch.randn(5, 7, generator=g),
        "b16": torch.randn(6, generator=g).to(torch.bfloat16),
        "i": torch.randint(0, 100, (3, 2), generator=g),
        "scalar": torch.tensor(3.5),
        "tied_a": shared,
        "tied_b": shared,  # shares storage with tied_a
        "flag": torch.tensor([True, False]),
    }


@pytest.mark.parametrize("name", ["w.safetensors", "w.pt", "w.bin"])
def test_weights_round_trip_bit_identical(tmp_path, name):
    sd = _state_dict()
    save_weights(sd, tmp_path / name)
    back = load_weights(tmp_path / name)
    assert set(back) == set(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), k
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp files left behind


@pytest.mark.parametrize("name", ["w.safetensors", "w.pt"])
@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_truncated_weights_raise_clear_error(tmp_path, name, keep):
    path = tmp_path / name
    save_weights(_state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep >= 0 else len(data) - 9])
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights(path)


def test_corrupt_tensor_bytes_detected(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(_state_dict(), path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside tensor data: the header still parses
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_weights(path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")


def test_whole_model_requires_trust(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    save_whole_model(model, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="trusted=True"):
        load_whole_model(tmp_path / "model.pth")
    back = load_whole_model(tmp_path / "model.pth", trusted=True)
    x = torch.randn(4, 3)
    assert torch.equal(back(x), model(x))


def test_exception_mid_save_leaves_no_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "m.pth") as f:
            torch.save({"x": Boom()}, f)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_version(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights({"a": torch.ones(2)}, path)
    with pytest.raises(TypeError):
        save_weights({"a": "not a tensor"}, path)  # type: ignore[dict-item]
    assert torch.equal(load_weights(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_atomic_dir_replaces_and_verifies(tmp_path):
    d = tmp_path / "model"
    with atomic_dir(d) as tmp:
        (tmp / "a.txt").write_text("one")
    with atomic_dir(d) as tmp:
        (tmp / "a.txt").write_text("two")
    assert (d / "a.txt").read_text() == "two"
    verify_dir(d)
    (d / "a.txt").write_text("tampered")
    with pytest.raises(CheckpointError, match="a.txt"):
        verify_dir(d)
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "never") as tmp:
            (tmp / "x").write_text("x")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_training_checkpoints_fall_back_to_previous_complete(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        save_training_checkpoint(root, {"model": {"w": torch.full((2,), float(step))}, "step": step}, step)
    assert sorted(p.name for p in root.iterdir()) == ["step-0000000002", "step-0000000003"]  # keep=2
    newest = root / "step-0000000003" / "checkpoint.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    warnings = []
    path, ckpt = latest_checkpoint(root, warn=warnings.append)
    assert path.name == "step-0000000002" and ckpt["step"] == 2
    assert len(warnings) == 1 and "step-0000000003" in warnings[0]
    with pytest.raises(CheckpointError, match="step-0000000003"):
        load_training_checkpoint(root / "step-0000000003")
    # A directory without a manifest (a crash before the rename cannot produce one, but a copy can).
    os.remove(root / "step-0000000002" / "MANIFEST.json")
    assert latest_checkpoint(root, warn=warnings.append) is None


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        from shared.atomic import write_bytes

        write_bytes(tmp_path / "f.json", b"{}")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o640  # mkstemp alone gives 0600
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750  # mkdtemp alone gives 0700


def test_resuming_weights_that_do_not_fit_the_model_is_a_named_error(tmp_path):
    """A checkpoint whose weights belong to another layout (e.g. a CNN saved before pool-first) names
    the file and the mismatch instead of raising torch's traceback."""
    from shared.training import restore_or_start

    old = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    new = nn.Sequential(nn.Linear(3, 4), nn.Identity(), nn.ReLU(), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(new.parameters(), 0.1)
    ckpt = {"config": {}, "model": old.state_dict(), "optimizer": {}, "state": {}, "rng": {}}
    with pytest.raises(CheckpointError, match=r"step-8\.pt: its weights do not fit .*2\.weight"):
        restore_or_start((tmp_path / "step-8.pt", ckpt), new, optimizer, None, {})


def test_link_dir_shares_the_files_once_and_later_writes_keep_them_apart(tmp_path):
    """best/ and last/ of one evaluation are the same model: written once, linked (issue 25)."""
    with atomic_dir(tmp_path / "best") as d:
        (d / "model.bin").write_bytes(b"weights-1")
        (d / "sub").mkdir()
        (d / "sub" / "config.json").write_text("{}")
    link_dir(tmp_path / "best", tmp_path / "last")
    verify_dir(tmp_path / "last")
    assert (tmp_path / "last" / "model.bin").stat().st_ino == (tmp_path / "best" / "model.bin").stat().st_ino
    assert (tmp_path / "last" / "sub" / "config.json").read_text() == "{}"
    with atomic_dir(tmp_path / "best") as d:  # a better model later: last/ keeps what it had
        (d / "model.bin").write_bytes(b"weights-2")
    assert (tmp_path / "last" / "model.bin").read_bytes() == b"weights-1"
    verify_dir(tmp_path / "last")
    verify_dir(tmp_path / "best")
