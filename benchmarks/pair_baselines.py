"""The baselines a pair model must beat on a held-out file: the majority class, and a logistic
regression on character-overlap features (Jaccard, containment both ways, longest common substring,
length ratio) trained on the training file.

    python benchmarks/pair_baselines.py --train-file T.tsv --test-file H.tsv [--text-columns A,B ...]

Prints one JSON line: majority and overlap-LR accuracy and macro-F1 on the test file. With --regression
(a score column such as STS-B's): a ridge regression on the same features, and the training mean, scored
by Pearson, Spearman and MSE.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from afqmc.data.sources import PairFile, read_labelled, read_pairs  # noqa: E402


def longest_common_substring(a: str, b: str) -> int:
    best, row = 0, [0] * (len(b) + 1)
    for ca in a:
        prev = 0
        for j, cb in enumerate(b, start=1):
            cur = row[j]
            row[j] = prev + 1 if ca == cb else 0
            best = max(best, row[j])
            prev = cur
    return best


def overlap_features(a: str, b: str) -> list[float]:
    sa, sb = set(a), set(b)
    inter = len(sa & sb)
    lcs = longest_common_substring(a, b)
    return [inter / max(len(sa | sb), 1), inter / max(len(sa), 1), inter / max(len(sb), 1),
            lcs / max(min(len(a), len(b)), 1), min(len(a), len(b)) / max(len(a), len(b), 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-file", required=True, help="training pairs (any format afqmc reads)")
    parser.add_argument("--test-file", required=True, help="held-out labelled pairs")
    parser.add_argument("--text-columns", default=None, help="as in afqmc train")
    parser.add_argument("--label-column", default=None, help="as in afqmc train")
    parser.add_argument("--regression", action="store_true", help="the labels are scores (default: classes)")
    args = parser.parse_args()
    if args.regression:
        return score_baselines(args)
    columns = tuple(args.text_columns.split(",")) if args.text_columns else None
    train, labels = read_labelled(PairFile(args.train_file, columns, args.label_column), None)
    test = read_pairs(PairFile(args.test_file, columns, args.label_column), labels)
    x_train = np.array([overlap_features(p.sentence1, p.sentence2) for p in train])
    x_test = np.array([overlap_features(p.sentence1, p.sentence2) for p in test])
    y_train, y_test = np.array([p.label for p in train]), np.array([p.label for p in test])
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    lr = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    pred = lr.predict(x_test)
    print(json.dumps({
        "test": args.test_file, "n": len(test), "labels": labels,
        "majority_accuracy": float((y_test == majority).mean()),
        "overlap_lr_accuracy": float((pred == y_test).mean()),
        "overlap_lr_macro_f1": float(f1_score(y_test, pred, average="macro")),
    }))


def score_baselines(args: argparse.Namespace) -> None:
    from sklearn.linear_model import Ridge

    from afqmc.data.task import as_scores
    from shared.score_metrics import regression_metrics

    columns = tuple(args.text_columns.split(",")) if args.text_columns else None
    sets = []
    for path in (args.train_file, args.test_file):
        pairs, labels = read_labelled(PairFile(path, columns, args.label_column), None)
        sets.append(as_scores(pairs, labels))
    (x_train, y_train), (x_test, y_test) = (
        (np.array([overlap_features(p.sentence1, p.sentence2) for p in s]), np.array([p.label for p in s]))
        for s in sets)
    ridge = regression_metrics(y_test, Ridge(alpha=1.0).fit(x_train, y_train).predict(x_test))
    mean = regression_metrics(y_test, np.full(len(y_test), y_train.mean()))
    print(json.dumps({"test": args.test_file, "n": len(y_test), "mean_mse": mean["mse"],
                      **{f"overlap_ridge_{k}": ridge[k] for k in ("pearson", "spearman", "mse")}}))


if __name__ == "__main__":
    main()
