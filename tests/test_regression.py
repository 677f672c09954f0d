"""Similarity scores (regression): metrics computed by hand and against scipy, the task decision, and the
whole CLI on a learnable score (train -> best/ -> eval / predict / --pair / PairScorer / serve)."""

import csv
import json
import random

import numpy as np
import pytest

from afqmc.cli import main as afqmc_main
from afqmc.data.task import decide_task
from shared.errors import UserError
from shared.score_metrics import average_ranks, regression_metrics

CHARS = "花呗借呗还款怎么如何提额逾期了吗能"


def score_rows(n, seed):
    """sentence2 keeps the first k of sentence1's 6 characters; the score is 5k/6 with noise: learnable."""
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        a = "".join(r.choice(CHARS) for _ in range(6))
        k = r.randint(0, 6)
        rows.append({"sentence1": a, "sentence2": a[:k] + "".join(r.choice(CHARS) for _ in range(6 - k)),
                     "score": round(k * 5 / 6 + r.uniform(-0.3, 0.3), 2)})
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    return path


def test_metrics_by_hand_and_against_scipy():
    # y = (1, 2, 3), p = (1, 3, 2): centred (-1, 0, 1) and (-1, 1, 0): r = 1 / 2; ranks the same: rho = 1/2
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
    assert m["pearson"] == pytest.approx(0.5) and m["spearman"] == pytest.approx(0.5)
    assert m["mse"] == pytest.approx(2 / 3) and m["n"] == 3 and not m["single_score_prediction"]
    assert average_ranks(np.array([5.0, 1.0, 5.0, 3.0])).tolist() == [3.5, 1.0, 3.5, 2.0]  # ties share
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 6, 200).astype(float), rng.normal(size=200)  # many ties in y
    m = regression_metrics(y, p)
    assert m["pearson"] == pytest.approx(stats.pearsonr(y, p)[0], abs=1e-12)
    assert m["spearman"] == pytest.approx(stats.spearmanr(y, p)[0], abs=1e-12)
    constant = regression_metrics(y, np.full(200, 2.0))
    assert constant["pearson"] == constant["spearman"] == 0.0 and constant["single_score_prediction"]


def test_the_task_is_decided_from_the_labels_and_says_why():
    assert decide_task("auto", ["0.5", "1", "3.8"])[0] == "regression"  # a fraction
    assert decide_task("auto", [str(i) for i in range(11)])[0] == "regression"  # more than 10 whole numbers
    task, why = decide_task("auto", [str(i) for i in range(6)])  # STS-B-zh's whole 0-5
    assert task == "classification" and "--task regression treats them as scores" in why
    assert decide_task("auto", ["0", "1"]) == ("classification", "auto: 2 distinct labels")
    assert decide_task("regression", ["0", "1"])[0] == "regression"
    with pytest.raises(UserError, match="--task regression needs numeric labels; the training data has 'entailment'"):
        decide_task("regression", ["entailment", "neutral"])


@pytest.fixture(scope="module")
def score_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("scores")
    train, dev = _write(d / "train.json", score_rows(160, 0)), _write(d / "dev.json", score_rows(40, 1))
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--label-column", "score",
                       "--model", "scratch", "--scratch-size", "tiny", "--epochs", "4", "--batch-size", "16",
                       "--lr", "1e-3", "--precision", "fp32", "--out", str(d / "run"), "--quiet"]) == 0
    return d


def test_a_score_model_learns_and_every_command_gives_its_score(score_run, tmp_path, capsys):
    run = score_run / "run"
    m = json.loads((run / "metrics.json").read_text())
    assert m["config"]["task"] == "regression" and m["config"]["select_by"] == "pearson"
    assert m["best_dev_pearson"] >= 0.8 and "dev_accuracy" not in m and m["best_confusion_matrix"] is None
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    assert list(csv.DictReader(open(run / "history.csv")))[-1].keys() >= {"eval_pearson", "eval_spearman", "eval_mse"}
    capsys.readouterr()
    assert afqmc_main(["eval", "--model-dir", str(run / "best"), "--file", str(score_run / "dev.json"),
                       "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert f"Pearson: {m['best_dev_pearson']:.4f}" in out  # reproduces the run's selection
    for ext in ("csv", "jsonl"):
        assert afqmc_main(["predict", "--model-dir", str(run / "best"), "--file", str(score_run / "dev.json"),
                           "--output", str(tmp_path / f"s.{ext}")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [set(r) for r in rows] == [{"id", "score"}] * 40
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "id,score"
    from afqmc import PairScorer
    scorer = PairScorer.from_dir(run / "best")
    same, different = scorer.predict([("花呗借呗还款", "花呗借呗还款"), ("花呗借呗还款", "提额逾期了吗")])
    assert set(same) == {"score"} and same["score"] > different["score"]  # 6 shared characters vs none
    with pytest.raises(UserError, match="no label probabilities"):
        scorer.probabilities([("a", "b")])
    capsys.readouterr()
    assert afqmc_main(["predict", "--model-dir", str(run / "best"), "--pair", "花呗借呗还款", "花呗借呗还款"]) == 0
    assert "\nscore: " in "\n" + capsys.readouterr().out


def test_classification_options_are_refused_for_a_regression(score_run, capsys):
    argv = ["train", "--train-file", str(score_run / "train.json"), "--dev-file", str(score_run / "dev.json"),
            "--label-column", "score", "--model", "scratch", "--out", str(score_run / "x")]
    assert afqmc_main([*argv, "--tune-threshold"]) == 2  # the task is decided from the data: auto -> regression
    assert "--tune-threshold is for classification, not --task regression" in capsys.readouterr().err
    assert afqmc_main([*argv, "--task", "regression", "--select-by", "macro_f1", "--class-weights", "balanced"]) == 2
    err = capsys.readouterr().err
    assert "--class-weights is for classification" in err and "--select-by macro_f1 is for classification" in err
    assert afqmc_main([*argv, "--streaming"]) == 2
    assert "--streaming: a regression (score) task reads its training file into memory" in capsys.readouterr().err


@pytest.mark.slow  # a real server process
def test_serve_answers_the_scores_predict_writes(score_run, tmp_path):
    pytest.importorskip("aiohttp")
    from test_serve import Server

    best = score_run / "run" / "best"
    rows = score_rows(12, 3)
    assert afqmc_main(["predict", "--model-dir", str(best), "--file", str(_write(tmp_path / "t.json", rows)),
                       "--output", str(tmp_path / "p.jsonl"), "--threads", "1"]) == 0
    expected = [json.loads(x)["score"] for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    server = Server(best)
    try:
        assert server.request("/health")[1]["task"] == "regression"
        status, body = server.request("/predict", {"pairs": [[r["sentence1"], r["sentence2"]] for r in rows]})
        assert status == 200 and [set(p) for p in body["predictions"]] == [{"score"}] * 12
        assert [p["score"] for p in body["predictions"]] == pytest.approx(expected, abs=1e-5)
    finally:
        assert server.stop() == 0
