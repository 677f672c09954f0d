"""--eval-every-steps, --select-by, --patience and --tune-threshold: the decisions, computed by hand,
and the same decisions after a SIGKILL and --resume."""

import json

import numpy as np
import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, write_jsonl
from shared.epochs import run_epochs
from shared.loops import TrainState
from shared.rundir import setup_logging
from shared.selection import improves, threshold_metrics, tune_threshold
from test_epochs import _trainer
from test_resume import _kill_resume_compare


def test_tuned_threshold_by_hand():
    # argmax (0.5) gets 5/15 right; every threshold between 0.1 and 0.4 gets 15/15: it fixes 10 pairs and
    # breaks none, 10 > 2 sqrt(10) = 6.3, beyond chance, so the midpoint 0.25 is chosen.
    positive, y = np.array([0.1] + [0.4] * 5 + [0.45] * 5 + [0.9] * 4), np.array([0] + [1] * 14)
    assert tune_threshold(positive, y, "accuracy") == 0.25
    # The same pattern on 2 of 5 pairs: 2 fixed, 2 > 2 sqrt(2) = 2.8 fails: too few to move off argmax.
    positive, y = np.array([0.1, 0.4, 0.45, 0.7, 0.9]), np.array([0, 1, 1, 1, 1])
    assert tune_threshold(positive, y, "accuracy") == 0.5
    # Over-fitting dev: 0.25 fixes 8 pairs but breaks 5 (the best on dev, +3 of 33), and 3 < 2 sqrt(13) = 7.2.
    positive = np.array([0.4] * 8 + [0.42] * 5 + [0.9] * 10 + [0.1] * 10)
    y = np.array([1] * 8 + [0] * 5 + [1] * 10 + [0] * 10)
    assert threshold_metrics(positive, y, 0.25)["accuracy"] > threshold_metrics(positive, y, 0.5)["accuracy"]
    assert tune_threshold(positive, y, "accuracy") == 0.5
    assert tune_threshold(np.array([0.2, 0.8]), np.array([0, 1]), "macro_f1") == 0.5  # nothing to gain: 0.5 stays
    assert improves(0.3, 0.4, "loss") and not improves(0.5, 0.4, "loss") and improves(0.5, 0.4, "accuracy")


def test_evaluations_inside_epochs_and_early_stop_at_the_right_one(tmp_path):
    setup_logging(quiet=True)
    events = []
    # 4 steps per epoch, an evaluation every 3 global steps and at epoch ends: steps 3, 4, 6, 8, 9, 12.
    trainer = _trainer(tmp_path, [0.5, 0.6, 0.6, 0.5, 0.9, 0.9], events)
    trainer.eval_every_steps, trainer.patience = 3, 2
    state = TrainState()
    run_epochs(trainer, state, progress=False)
    assert [e for e in events if e[0] != "last"] == [
        ("train", 0, 0), ("eval", 0), ("best", 0), ("eval", 1), ("best", 1),
        ("train", 1, 0), ("eval", 2), ("eval", 3)]  # no better than step 4 twice in a row: stop at step 8
    assert state.stopped_early and state.global_step == 8 and state.best_step == 4 and state.best_epoch == 1
    m = json.loads(trainer.run.metrics.read_text())
    assert [e["step"] for e in m["history"]] == [3, 4, 6, 8] and m["best_step"] == 4 and m["stopped_early"]
    assert m["best_dev_accuracy"] == 0.6 and m["dev_accuracy"] == 0.5
    events.clear()
    run_epochs(trainer, state, progress=False)  # a finished (early-stopped) run does not train again
    assert not [e for e in events if e[0] in ("train", "eval")]
    trainer.patience = 3  # resumed with more patience: it goes on from step 8
    run_epochs(trainer, state, progress=False)
    assert events[:2] == [("train", 2, 0), ("eval", 0)] and state.global_step == 9 and state.stopped_early


def test_select_by_loss_keeps_the_lowest_loss(tmp_path):
    setup_logging(quiet=True)
    events = []
    trainer = _trainer(tmp_path, [0.5, 0.8, 0.7], events)  # the scripted loss is 1 - accuracy
    trainer.select_by = "loss"
    state = TrainState()
    run_epochs(trainer, state, progress=False)
    assert state.best_epoch == 2 and abs(state.best_metric - 0.2) < 1e-12


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_early_stop_resumes_exactly_after_sigkill(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
            "--scratch-size", "tiny", "--epochs", "6", "--batch-size", "16", "--save-every-steps", "2",
            "--eval-every-steps", "3", "--patience", "3", "--select-by", "loss", "--quiet"]
    _kill_resume_compare(args, tmp_path, total_steps=10, trials=2, seed=31)
    runs = [json.loads((d / "metrics.json").read_text()) for d in tmp_path.glob("*") if (d / "metrics.json").exists()]
    assert len({(m["best_step"], m["stopped_early"], m["global_step"]) for m in runs}) == 1


def test_tuned_threshold_is_saved_and_decides_predictions(tmp_path, capsys):
    from afqmc.model.scorer import PairScorer

    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 2))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(32, 3))
    run = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                       "--scratch-size", "tiny", "--max-steps", "4", "--batch-size", "16", "--tune-threshold",
                       "--eval-every-steps", "2", "--out", str(run), "--quiet"]) == 0
    threshold = json.loads((run / "best" / "config.json").read_text())["decision_threshold"]
    assert afqmc_main(["predict", "--model-dir", str(run / "best"), "--file", str(dev),
                       "--output", str(tmp_path / "p.json")]) == 0
    labels = [json.loads(line)["label"] for line in (tmp_path / "p.json").read_text().splitlines()]
    scorer = PairScorer.from_dir(run / "best")
    pairs = [(r["sentence1"], r["sentence2"]) for r in make_pairs(32, 3)]
    p1 = scorer.probabilities(pairs)[:, 1]
    assert scorer.threshold == threshold and labels == ["1" if p >= threshold else "0" for p in p1]
    capsys.readouterr()
    assert afqmc_main(["eval", "--model-dir", str(run / "best"), "--file", str(dev), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    headline = out.splitlines()[0]  # the accuracy at the saved threshold, with the argmax figure beside it
    assert headline.startswith("accuracy ") and f"decision threshold {threshold:.4f}" in headline
    assert "argmax: " in headline and "accuracy: " in out
    scorer.threshold = 0.0  # everything reaches a threshold of 0: always the second label
    assert {r["label"] for r in scorer.predict(pairs)} == {"1"}
