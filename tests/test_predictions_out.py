"""Predictions written for use downstream: every label's probability, in the format the file name asks
for (shared.record_files), from `afqmc predict --file` and `fashion predict --output`."""

import csv
import json

import numpy as np
import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from shared.errors import UserError
from shared.record_files import record_format, records_bytes, write_records

RECORDS = [{"id": 7, "label": "b", "probability": 0.75, "probabilities": {"a": 0.25, "b": 0.75}},
           {"id": "x,1", "label": "a", "probability": 0.5, "probabilities": {"a": 0.5, "b": 0.5}}]


def test_record_formats_by_extension(tmp_path):
    for name in ("p.jsonl", "p.JSON", "p.csv", "p.tsv"):
        write_records(tmp_path / name, RECORDS)
    assert [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()] == RECORDS
    assert (tmp_path / "p.JSON").read_bytes() == (tmp_path / "p.jsonl").read_bytes()
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["id", "label", "probability", "probabilities.a", "probabilities.b"],
                    ["7", "b", "0.75", "0.25", "0.75"], ["x,1", "a", "0.5", "0.5", "0.5"]]  # the comma quoted
    assert (tmp_path / "p.tsv").read_text().splitlines()[1] == "7\tb\t0.75\t0.25\t0.75"
    with pytest.raises(UserError, match=r"--output .*p\.txt: unknown extension '\.txt'; use \.jsonl"):
        record_format(tmp_path / "p.txt")
    with pytest.raises(UserError, match="folder .* does not exist"):
        record_format(tmp_path / "no" / "p.csv")
    with pytest.raises(ValueError):  # a column only some rows carry would be silently blank
        records_bytes([{"a": 1}, {"b": 2}], "csv")


@pytest.fixture(scope="module")
def afqmc_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("afqmc-out")
    train = write_jsonl(d / "train.json", make_pairs(32, 0))
    dev = write_jsonl(d / "dev.json", make_pairs(16, 1))
    rc = afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model",
                     str(make_tiny_bert(d / "tiny")), "--out", str(d / "run"), "--epochs", "1", "--quiet"])
    assert rc == 0
    return d


def test_afqmc_predict_writes_probabilities_in_every_format(afqmc_model, tmp_path):
    from afqmc.model.scorer import PairScorer

    test = write_jsonl(tmp_path / "test.json", make_pairs(9, 2), drop_label=True, ids=True)
    best = str(afqmc_model / "run" / "best")
    for ext in ("json", "jsonl", "csv", "tsv"):
        assert afqmc_main(["predict", "--model-dir", best, "--file", str(test), "--output",
                           str(tmp_path / f"p.{ext}")]) == 0
    clue = [json.loads(x) for x in (tmp_path / "p.json").read_text().splitlines()]
    assert [set(r) for r in clue] == [{"id", "label"}] * 9  # CLUE's submission format, unchanged
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    pairs = [(r["sentence1"], r["sentence2"]) for r in map(json.loads, test.read_text().splitlines())]
    expected = PairScorer.from_dir(best).probabilities(pairs)
    assert [r["id"] for r in rows] == [r["id"] for r in clue] == list(range(1000, 1009))
    for row, p, c in zip(rows, expected, clue):
        got = [row["probabilities"]["0"], row["probabilities"]["1"]]
        assert np.allclose(got, p, atol=1e-6) and sum(got) == pytest.approx(1, abs=1e-6)
        assert row["label"] == c["label"] == "01"[int(np.argmax(p))] and row["probability"] == max(got)
    with open(tmp_path / "p.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["id", "label", "probability", "probabilities.0", "probabilities.1"]
    assert [float(t["probabilities.1"]) for t in table] == [r["probabilities"]["1"] for r in rows]
    assert (tmp_path / "p.tsv").read_text().replace("\t", ",") == (tmp_path / "p.csv").read_text()
