import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from shared.loops import TrainState, train_one_epoch

from shared.evaluation import evaluate, predict_proba
from shared.metrics import classification_metrics, single_class_warning, format_test_line
from shared.runtime import capture_rng, restore_rng, seed_everything, select_device

CPU = torch.device("cpu")


def _problem(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _batches(x, y, bs):
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]


def test_loop_reduces_loss_and_logs_tutorial_lines(caplog):
    torch.manual_seed(0)
    x, y = _problem()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    before = evaluate(model, _batches(x, y, 64), loss_fn, device=CPU, num_classes=2)
    state = TrainState()
    with caplog.at_level("INFO", logger="pairtrain"):
        for _ in range(5):
            out = train_one_epoch(model, _batches(x, y, 16), loss_fn, opt, state, device=CPU,
                                  log_interval=8, dataset_size=len(x))
            state.next_epoch()
    after = evaluate(model, _batches(x, y, 64), loss_fn, device=CPU, num_classes=2)
    assert after["loss"] < before["loss"] * 0.5
    assert after["accuracy"] > 0.9
    assert state.global_step == 5 * 32
    assert out["train_samples"] == 512
    assert "loss: " in caplog.text and "[  128/  512]" in caplog.text


@pytest.mark.parametrize("k", [2, 4])
def test_accumulation_equals_one_big_batch(k):
    torch.manual_seed(1)
    x, y = _problem(64)
    base = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
    big, small = copy.deepcopy(base), copy.deepcopy(base)
    loss_fn = nn.CrossEntropyLoss()
    opt_big = torch.optim.SGD(big.parameters(), lr=0.5)
    opt_small = torch.optim.SGD(small.parameters(), lr=0.5)
    train_one_epoch(big, _batches(x, y, 64), loss_fn, opt_big, TrainState(), device=CPU)
    s = TrainState()
    train_one_epoch(small, _batches(x, y, 64 // k), loss_fn, opt_small, s, device=CPU, accum_steps=k,
                    num_batches=k)
    assert s.global_step == 1
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class DictModel(nn.Module):
    """Takes keyword inputs and returns an object with ``.logits`` (HF style)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, features, scale):
        return SimpleNamespace(logits=self.lin(features) * scale)


def test_mapping_inputs_logits_object_scheduler_clip_and_bf16():
    x, y = _problem(96)
    batches = [({"features": x[i:i + 32], "scale": torch.ones(1)}, y[i:i + 32]) for i in range(0, 96, 32)]
    model = DictModel()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / 10)
    state = TrainState()
    calls = []
    train_one_epoch(model, batches, nn.CrossEntropyLoss(), opt, state, device=CPU, scheduler=sched,
                    max_grad_norm=1.0, autocast_dtype=torch.bfloat16, on_step=lambda s: calls.append(s.global_step),
                    max_steps=2)
    assert calls == [1, 2] and state.global_step == 2
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.8)
    m = evaluate(model, batches, nn.CrossEntropyLoss(), device=CPU, num_classes=3, autocast_dtype=torch.bfloat16)
    assert np.asarray(m["confusion_matrix"]).shape == (3, 3) and m["n"] == 96
    probs = predict_proba(model, [b[0] for b in batches], device=CPU)
    assert probs.shape == (96, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


def test_metrics_values_and_single_class_warning():
    y_true = np.array([0, 0, 1, 1, 1, 0])
    y_pred = np.array([0, 1, 1, 1, 0, 0])
    m = classification_metrics(y_true, y_pred, 2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert not m["single_class_prediction"]
    allzero = classification_metrics(y_true, np.zeros(6, dtype=int), 2)
    assert allzero["single_class_prediction"]
    assert "predicts 'neg' for all 6" in single_class_warning(allzero, ["neg", "pos"])
    line = format_test_line({"accuracy": 0.837, "loss": 0.441249})
    assert line == "Test Error: \n Accuracy: 83.7%, Avg loss: 0.441249 \n"


def test_metrics_by_hand_and_against_scikit_learn():
    """3 classes, one never predicted and one never true: precision/recall/F1 as computed by hand, and
    equal to scikit-learn's zero_division=0 figures on random labels (what shared.metrics replaced)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    m = classification_metrics(np.array([0, 0, 1, 1, 0]), np.array([0, 1, 1, 0, 0]), 3)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert m["per_class"]["precision"] == pytest.approx([2 / 3, 1 / 2, 0])
    assert m["per_class"]["recall"] == pytest.approx([2 / 3, 1 / 2, 0])
    assert m["per_class"]["f1"] == pytest.approx([2 / 3, 1 / 2, 0]) and m["per_class"]["support"] == [3, 2, 0]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2) / 3)
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5):
        y_true, y_pred = rng.integers(0, classes, 200), rng.integers(0, classes - 1, 200)
        m = classification_metrics(y_true, y_pred, classes)
        labels = list(range(classes))
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None, zero_division=0)
        np.testing.assert_allclose(m["per_class"]["precision"], p)
        np.testing.assert_allclose(m["per_class"]["recall"], r)
        np.testing.assert_allclose(m["per_class"]["f1"], f)
        assert m["per_class"]["support"] == s.tolist()
        assert m["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()


def test_evaluate_loss_is_mean_per_example():
    x, y = _problem(10)
    model = nn.Linear(8, 2)
    loss_fn = nn.CrossEntropyLoss()
    m = evaluate(model, _batches(x, y, 4), loss_fn, device=CPU, num_classes=2)  # batches of 4, 4, 2
    with torch.no_grad():
        assert m["loss"] == pytest.approx(loss_fn(model(x), y).item(), rel=1e-6)


def test_rng_capture_restore_round_trip():
    seed_everything(3)
    state = capture_rng()
    a = (np.random.rand(), torch.rand(2), __import__("random").random())
    restore_rng(state)
    b = (np.random.rand(), torch.rand(2), __import__("random").random())
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and a[2] == b[2]


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        from shared.errors import UserError
        with pytest.raises(UserError, match="CUDA is not available"):
            select_device("cuda")
