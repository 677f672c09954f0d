"""shared.collector: the garbage collector is paused for imports only, and frozen at exit."""

import gc
import json
import subprocess
import sys

import pytest

from conftest import REPO
from shared.collector import collector_paused


@pytest.fixture(autouse=True)
def unfrozen():
    """Each test starts and ends with nothing frozen and the collector on, as pytest runs it."""
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_paused_block_then_frozen_and_resumed():
    assert gc.get_freeze_count() == 0
    with collector_paused():
        assert not gc.isenabled()
        kept = [object() for _ in range(10)]  # noqa: F841 - alive when the block ends
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_an_error_inside_still_resumes_and_a_disabled_collector_stays_off():
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_commands_run_with_the_collector_on(tmp_path, monkeypatch):
    """The pause ends before the command's work: a training run must collect its garbage."""
    import afqmc.commands.train
    import fashion.train
    from afqmc.cli import main as afqmc_main
    from fashion.cli import main as fashion_main

    seen = {}
    monkeypatch.setattr(afqmc.commands.train, "main", lambda cfg: seen.setdefault("afqmc", gc.isenabled()))
    monkeypatch.setattr(fashion.train, "main", lambda cfg: seen.setdefault("fashion", gc.isenabled()))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"sentence1": "a", "sentence2": "b", "label": "0"}) + "\n")
    assert afqmc_main(["train", "--train-file", str(pairs), "--dev-file", str(pairs), "--out",
                       str(tmp_path / "a")]) == 0
    assert fashion_main(["train", "--out", str(tmp_path / "f")]) == 0
    assert seen == {"afqmc": True, "fashion": True}


def test_exit_freezes_everything_after_the_other_exit_handlers():
    """A handler registered first runs last (atexit is last-in first-out) and sees everything frozen,
    by one call however often it was asked for."""
    code = ("import atexit, gc\n"
            "calls, freeze = [], gc.freeze\n"
            "gc.freeze = lambda: calls.append(1) or freeze()\n"
            "atexit.register(lambda: print('freezes:', len(calls), 'frozen:', gc.get_freeze_count() > 0))\n"
            "from shared.collector import no_collection_at_exit\n"
            "no_collection_at_exit(); no_collection_at_exit()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "freezes: 1 frozen: True"
