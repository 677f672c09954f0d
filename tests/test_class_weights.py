"""--class-weights: the weights and the weighted training loss, computed by hand; bad specs refused."""

import math

import pytest
import torch
from torch import nn

from afqmc_helpers import make_pairs, write_jsonl
from conftest import run_cli
from shared.errors import UserError
from shared.training import class_weights


def test_balanced_weights_give_every_class_the_same_total_weight():
    counts = [69, 31]
    w = class_weights("balanced", counts, ["0", "1"])
    assert w == pytest.approx([100 / (2 * 69), 100 / (2 * 31)])
    assert w[0] * counts[0] == pytest.approx(w[1] * counts[1])
    assert class_weights("none", counts, ["0", "1"]) is None
    assert class_weights("1,2.5", counts, ["0", "1"]) == [1.0, 2.5]
    with pytest.raises(UserError, match="no training example has label 1"):
        class_weights("balanced", [5, 0], ["0", "1"])


def test_weighted_cross_entropy_matches_the_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = torch.tensor([0, 1, 1])
    w = [1.0, 3.0]
    per_example = [-math.log(math.exp(row[t]) / sum(math.exp(v) for v in row))
                   for row, t in zip(logits.tolist(), targets.tolist())]
    by_hand = sum(w[t] * loss for t, loss in zip(targets.tolist(), per_example)) / sum(w[t] for t in targets.tolist())
    assert nn.CrossEntropyLoss(weight=torch.tensor(w))(logits, targets).item() == pytest.approx(by_hand)


@pytest.mark.slow  # a whole CLI run or a real signal; CI runs it
def test_cli_class_weights(tmp_path):
    rows = make_pairs(48, 0)
    rows = [r for r in rows if r["label"] == "0"] + [r for r in rows if r["label"] == "1"][:8]  # 24 vs 8
    train = write_jsonl(tmp_path / "train.json", rows)
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch",
            "--scratch-size", "tiny", "--epochs", "1", "--batch-size", "16"]
    r = run_cli(*args, "--class-weights", "balanced", "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert "class weights in the training loss: 0 0.6667, 1 2 (balanced)" in r.stdout
    # Streamed, the counts come from the validating pass over the file: the same weights.
    r = run_cli(*args, "--class-weights", "balanced", "--streaming", "--out", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "class weights in the training loss: 0 0.6667, 1 2 (balanced)" in r.stdout
    r = run_cli(*args, "--class-weights", "1,2,3", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "--class-weights 1,2,3: 3 weights for 2 labels (0, 1)" in r.stderr
    # A label named in --labels that no training pair has trains, with a warning that says so.
    r = run_cli(*args, "--labels", "0,1,2", "--class-weights", "1,2,3", "--out", str(tmp_path / "u"))
    assert r.returncode == 0, r.stderr
    assert "train.json: no training pair has label 2 (named in --labels)" in r.stdout + r.stderr
