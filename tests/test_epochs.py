"""The epoch ordering contract of shared.epochs.run_epochs, pinned with a tiny model and a scripted
evaluation: train -> evaluate -> best/ (only when better) -> last/ -> checkpoint -> metrics.json."""

import json

import numpy as np
import torch
from torch import nn

from shared.atomic import atomic_dir
from shared.epochs import Trainer, run_epochs
from shared.loops import TrainState
from shared.metrics import classification_metrics
from shared.rundir import RunDir, setup_logging

CPU = torch.device("cpu")


def _trainer(tmp_path, accuracies, events, epochs=3):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    run = RunDir(tmp_path / "run")
    run.root.mkdir()

    def batches(epoch, skip):
        events.append(("train", epoch, skip))
        return [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)][skip:]

    def evaluate(stop):
        k = len([e for e in events if e[0] == "eval"])
        events.append(("eval", k))
        correct = int(round(accuracies[k] * 10))
        metrics = classification_metrics(np.array([1] * 10), np.array([1] * correct + [0] * (10 - correct)), 2)
        return {**metrics, "loss": 1.0 - accuracies[k]}

    def save_model(path):
        has_checkpoint = (run.checkpoints).is_dir() and any(run.checkpoints.glob("step-*"))
        events.append((path.name, len(list(run.checkpoints.glob("step-*"))) if has_checkpoint else 0))
        with atomic_dir(path) as d:
            (d / "model.txt").write_text(f"after evaluation {len([e for e in events if e[0] == 'eval'])}")

    return Trainer(run=run, model=model, optimizer=optimizer, scheduler=None, loss_fn=nn.CrossEntropyLoss(),
                   config={"lr": 0.1}, epochs=epochs, steps_per_epoch=4, total_steps=4 * epochs, batches=batches,
                   evaluate=evaluate, save_model=save_model, eval_name="dev", class_names=["a", "b"], title="t",
                   data_sizes={"n": 32}, train_options={"device": CPU, "log_interval": 0, "num_batches": 4})


def test_epoch_ordering_and_best_selection(tmp_path):
    setup_logging(quiet=True)
    events = []
    trainer = _trainer(tmp_path, [0.5, 0.8, 0.7], events)
    state = TrainState()
    run_epochs(trainer, state, progress=False)
    # last/ is best/'s files linked when an evaluation improved, a save of its own otherwise.
    assert events == [("train", 0, 0), ("eval", 0), ("best", 0),
                      ("train", 1, 0), ("eval", 1), ("best", 1),
                      ("train", 2, 0), ("eval", 2), ("last", 2)]  # epoch 3 was worse: best/ kept
    assert (trainer.run.best / "model.txt").read_text() == "after evaluation 2"
    assert (trainer.run.last / "model.txt").read_text() == "after evaluation 3"
    assert state.best_epoch == 2 and state.best_metric == 0.8 and state.epoch == 3 and state.global_step == 12
    steps = sorted(p.name for p in trainer.run.checkpoints.glob("step-*"))
    assert steps == ["step-0000000008", "step-0000000012"]  # one per epoch end, newest two kept
    m = json.loads(trainer.run.metrics.read_text())
    assert m["best_epoch"] == 2 and m["final_epoch"] == 3 and m["dev_accuracy"] == 0.7
    assert [e["epoch"] for e in m["history"]] == [1, 2, 3]
    assert (trainer.run.root / "report.md").is_file() and (trainer.run.root / "history.csv").is_file()


def test_a_step_limit_ends_inside_an_epoch_and_keeps_its_position(tmp_path):
    setup_logging(quiet=True)
    events = []
    trainer = _trainer(tmp_path, [0.5, 0.6], events)
    trainer.total_steps = 6
    state = TrainState()
    run_epochs(trainer, state, progress=False)
    assert state.epoch == 1 and state.step_in_epoch == 2 and state.global_step == 6  # resumes inside epoch 2
    assert [e[0] for e in events] == ["train", "eval", "best", "train", "eval", "best"]
    assert (trainer.run.last / "model.txt").stat().st_ino == (trainer.run.best / "model.txt").stat().st_ino
