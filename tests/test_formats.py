"""Pair files in every supported format: columns, labels, errors (file and line/row), and the CLI round trip."""

import csv
import json

import pytest

from afqmc.cli import main
from afqmc.data.sources import PairFile, read_labelled, read_pairs, sort_labels
from shared.errors import UserError
from tests.afqmc_helpers import make_pairs, write_jsonl

NLI = ["entailment", "neutral", "contradiction"]


def nli_rows(n: int, seed: int) -> list[dict]:
    """3-class string labels on the synthetic pairs (the label is a function of the pair's index)."""
    return [{**row, "label": NLI[i % 3]} for i, row in enumerate(make_pairs(n, seed))]


def write_tsv(path, rows, header=None, label=True):
    lines = ["\t".join(header)] if header else []
    lines += ["\t".join([r["sentence1"], r["sentence2"]] + ([r["label"]] if label else [])) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path, rows, names=("q1", "q2", "gold", "id")):
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(names)
        for i, r in enumerate(rows):
            out.writerow([r["sentence1"], r["sentence2"], r["label"], f"q{i}"])
    return path


def write_parquet(path, rows, drop=()):
    import datasets
    datasets.Dataset.from_list([{k: v for k, v in r.items() if k not in drop} for r in rows]).to_parquet(str(path))
    return path


def test_headerless_tsv_is_positional_and_labels_are_collected_in_order(tmp_path):
    path = write_tsv(tmp_path / "d.tsv", nli_rows(9, 1))
    pairs, labels = read_labelled(path, None)
    assert labels == ["contradiction", "entailment", "neutral"]  # names: alphabetical
    assert [labels[p.label] for p in pairs] == [NLI[i % 3] for i in range(9)]
    assert pairs[4].where == f"{path}:5"
    assert sort_labels({"10", "2", "0", "x"}) == ["0", "2", "10", "x"]  # numbers numerically, then names


def test_headed_tsv_detects_columns_and_two_fields_is_unlabelled(tmp_path):
    rows = nli_rows(4, 2)
    headed = write_tsv(tmp_path / "h.tsv", rows, header=["premise", "hypothesis", "gold_label"])
    assert [p.sentence1 for p in read_pairs(headed, NLI)] == [r["sentence1"] for r in rows]
    unlabelled = write_tsv(tmp_path / "u.tsv", rows, label=False)
    assert [p.label for p in read_pairs(unlabelled, NLI, need_label=False)] == [None] * 4
    with pytest.raises(UserError, match=r"u\.tsv: no label column"):
        read_pairs(unlabelled, NLI)


def test_csv_with_its_own_names_needs_the_mapping_and_keeps_quoting_and_ids(tmp_path):
    rows = nli_rows(6, 3)
    rows[1]["sentence1"] = '他说："好, 的"\n第二行'  # comma, quotes and a line break inside one field
    path = write_csv(tmp_path / "d.csv", rows)
    with pytest.raises(UserError, match=r"d\.csv: 4 fields per line, and the first line \(q1, q2, gold, id\) "
                                        "is not a header with known column names; name the columns"):
        read_pairs(path, NLI)
    pairs = read_pairs(PairFile(str(path), ("q1", "q2"), "gold"), NLI)
    assert pairs[1].sentence1 == rows[1]["sentence1"] and [p.id for p in pairs] == [f"q{i}" for i in range(6)]
    assert pairs[2].where.endswith("d.csv:5")  # record 2 starts after the header and a two-line record


def test_headerless_file_with_other_field_counts_is_mapped_by_number(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("".join(f"{i}\t{r['sentence1']}\t{r['sentence2']}\t{r['label']}\n"
                            for i, r in enumerate(make_pairs(4, 4))), encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.txt: 4 fields per line, .*field numbers from 1"):
        read_pairs(path)
    assert [p.label for p in read_pairs(PairFile(str(path), ("2", "3"), "4"))] == [0, 1, 0, 1]


@pytest.mark.parametrize("name,content,needle", [
    ("f.tsv", "a\tb\t0\nc\td\n", "f.tsv:2: expected 3 tab-separated fields (as in the first line), found 2"),
    ("f.tsv", "a\tb\t0\nc\td\t1\tx\n", "f.tsv:2: expected 3 tab-separated fields"),
    ("f.tsv", b"a\tb\t0\n\xff\xfe\tb\t1\n", "f.tsv:2: invalid UTF-8 at byte 0"),
    ("f.tsv", "a\tb\t0\nc\t \t1\n", "f.tsv:2: field 2 is empty"),
    ("f.tsv", "a\tb\t0\nc\td\t2\n", "f.tsv:2: unknown label '2' (expected one of 0, 1) (use --skip-bad-lines"),
    ("f.tsv", "a\tb\t0\nc\td\t1.0\n", "f.tsv:2: unknown label '1.0' (expected one of 0, 1); it differs from '1' "
     "only in spelling: labels are matched exactly as written"),
    ("f.csv", 'sentence1,sentence2,label\na,b,0\n"c"x,d,1\n', "f.csv:3: bad CSV quoting"),
    ("f.csv", 'sentence1,sentence2,label\na,b,0\n"c,d,1\n', "f.csv:3: bad CSV quoting"),
    ("f.csv", 'sentence1,sentence2,label\na,b,0\nc,d\n', "f.csv:3: expected 3 comma-separated fields"),
    ("f.dat", "a\tb\t0\n", "f.dat: unknown file type '.dat'"),
    ("f.csv", "sentence1;sentence2;label\na;b;0\n", "f.csv: the first line (sentence1;sentence2;) is one field: its "
     "fields look separated by ';', but a .csv file is read comma-separated; save it with commas (.csv) or tabs"),
    ("f.tsv", "a,b,0\nc,d,1\n", "f.tsv: the first line (a,b,0) is one field: its fields look separated by ',', but "
     "a .tsv file is read tab-separated; name it .csv"),
    # A file that is one JSON array: each element is named by its line and place; syntax errors end the read.
    ("f.json", '[\n {"sentence1": "a", "sentence2": "b", "label": "0"},\n [1, 2]\n]', "f.json:3 (item 2): expected "
     "a JSON object, found list"),
    ("f.json", '[{"sentence1": "a", "sentence2": "b", "label": "0"},\n {"sentence1": "c", "sen',
     "f.json:2: invalid JSON (Unterminated string starting at column 21)"),
    ("f.json", '[{"sentence1": "a", "sentence2": "b", "label": "0"},\n {"sentence1": "a", "sentence2": "b", '
     '"label": "1" "x"}]', "f.json:2: invalid JSON (Expecting ',' delimiter at column 52)"),
    ("f.jsonl", '{"sentence1": "a", "sentence2": "b", "label": "1"}\n{"sentence1": "a", "sentence2": "b", '
     '"label": 1, }\n', "f.jsonl:2: invalid JSON (Expecting property name enclosed in double quotes at column 50)"),
    # Records wrapped in one object (as some exports write them): the layout is named, once, not a field.
    ("f.json", '{"data": [{"sentence1": "a", "sentence2": "b", "label": "0"}, {"sentence1": "c", "sentence2": "d", '
     '"label": "1"}]}\n', "f.json:1: one JSON object holding 2 records under 'data', not one record per line; "
     "write them one per line (e.g. jq -c '.data[]' FILE > pairs.jsonl) or as an array of records"),
    ("f.json", '{\n  "version": 2,\n  "data": [\n    {"sentence1": "a", "sentence2": "b", "label": "0"}\n  ]\n}\n',
     "f.json: one JSON object holding 1 record under 'data'"),
    ("f.json", '[{"sentence1": "a", "sentence2": "b", "label": "0"}]\n\n{}', "f.json:3: invalid JSON (text after"),
    ("f.json", '[{"sentence1": "a", "sentence2": "b", "label": "0"} {"sentence1": "c"}]', "f.json:1: invalid JSON "
     "(expected ',' or ']' after an element of the array)"),
    ("f.json", "[]", "f.json: no records (the file is empty)"),
    ("f.json", '["a", "b", "0"]\n["c", "d", "1"]\n', "f.json:1: expected a JSON object, found list"),  # lists per line
    # Another encoding is named, with the conversion; a damaged UTF-8 line is not taken for one.
    ("f.tsv", "花呗怎么还\t借呗\t1\n".encode("gbk"), "f.tsv:1: invalid UTF-8 at byte 0: the file looks GB18030 "
     "(GBK) encoded; convert it to UTF-8, e.g. iconv -f GB18030 -t UTF-8"),
    ("f.csv", "sentence1,sentence2,label\n花呗,借呗,1\n".encode("utf-16"), "f.csv:1: invalid UTF-8 at byte 0: the "
     "file looks UTF-16 encoded"),
    ("f.tsv", "花呗怎么还款\t借呗\t1\n".encode() + "花".encode()[:2] + "呗怎么还款\t借呗\t0\n".encode(),
     "f.tsv:2: invalid UTF-8 at byte 0 (use --skip-bad-lines"),
    ("f.csv", "sentence1,sentence2,label,label\na,b,0,1\n", "f.csv:1: the header names column 'label' more than once"),
    ("f.jsonl", '{"sentence1": "\\ud83d\\ude00", "sentence2": "b", "label": "0"}\n'
                '{"sentence1": "a\\ud800", "sentence2": "b", "label": "0"}\n',
     "f.jsonl:2: field 'sentence1' contains \\ud800, half of a UTF-16 surrogate pair"),
])
def test_bad_text_tables_name_file_and_line(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as e:
        read_pairs(path, ("0", "1"))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_skip_bad_lines_counts_tsv_defects(tmp_path, caplog):
    path = tmp_path / "f.tsv"
    path.write_text("a\tb\t0\nc\td\nx\ty\t1\n", encoding="utf-8")
    assert len(read_pairs(path, ("0", "1"), skip_bad=True)) == 2
    assert "skipped 1 bad line(s), kept 2" in caplog.text


def test_parquet_rows_and_errors(tmp_path):
    rows = nli_rows(5, 5)
    pairs, labels = read_labelled(write_parquet(tmp_path / "d.parquet", rows), None)
    assert [labels[p.label] for p in pairs] == [r["label"] for r in rows]
    with pytest.raises(UserError, match=r"n\.parquet: no label column"):
        read_pairs(write_parquet(tmp_path / "n.parquet", rows, drop=("label",)), NLI)
    rows[3]["sentence2"] = None
    with pytest.raises(UserError, match=r"z\.parquet: row 4: field 'sentence2' is null"):
        read_pairs(write_parquet(tmp_path / "z.parquet", rows), NLI)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserError, match=r"bad\.parquet: cannot read as parquet"):
        read_pairs(tmp_path / "bad.parquet", NLI)


def test_integer_labels_in_parquet_keep_their_order(tmp_path):
    rows = [{**r, "label": int(r["label"])} for r in make_pairs(6, 6)]
    pairs, labels = read_labelled(write_parquet(tmp_path / "i.parquet", rows), None)
    assert labels == ["0", "1"] and [p.label for p in pairs] == [0, 1, 0, 1, 0, 1]


def test_save_to_disk_directories(tmp_path):
    import datasets
    rows = nli_rows(6, 7)
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    assert len(read_pairs(tmp_path / "one", NLI)) == 6
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "validation": datasets.Dataset.from_list(rows[:2])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(UserError, match="splits train, validation; name one as"):
        read_pairs(tmp_path / "dd", NLI)
    assert len(read_pairs(f"{tmp_path / 'dd'}@validation", NLI)) == 2


def test_class_label_columns_give_their_names_and_minus_one_is_unlabelled(tmp_path):
    import datasets
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    rows = {"premise": ["a", "b", "c"], "hypothesis": ["d", "e", "f"], "label": [2, 0, -1]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "cl"))
    pairs = read_pairs(tmp_path / "cl", NLI, need_label=False)
    assert [NLI[p.label] if p.label is not None else None for p in pairs] == ["contradiction", "entailment", None]


def test_hub_dataset_offline_says_what_to_do(monkeypatch, tmp_path, capfd):
    """Offline, the cache answers at once: no HEAD requests retried (and printed) for 23 s first."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match=r"hf:someone/pairs@train: cannot load \(the Hugging Face hub is unreachable"
                                        r".*save_to_disk"):
        read_pairs("hf:someone/pairs@train", NLI)
    out = capfd.readouterr()
    assert "HEAD" not in out.out + out.err and "Retrying" not in out.out + out.err
    assert not constants.HF_HUB_OFFLINE and not datasets.config.HF_HUB_OFFLINE  # offline for that load only


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out.out


@pytest.mark.parametrize("fmt", ["tsv", "csv", "parquet", "disk", "json-array"])
def test_every_format_round_trips_through_train_eval_predict(tmp_path, capsys, fmt):
    train_rows, dev_rows = nli_rows(90, 8), nli_rows(24, 9)
    if fmt == "tsv":
        train, dev = write_tsv(tmp_path / "train.tsv", train_rows), write_tsv(tmp_path / "dev.tsv", dev_rows)
        columns = []
    elif fmt == "csv":
        train, dev = write_csv(tmp_path / "train.csv", train_rows), write_csv(tmp_path / "dev.csv", dev_rows)
        columns = ["--text-columns", "q1,q2", "--label-column", "gold"]
    elif fmt == "json-array":  # one JSON array of objects, as pandas' to_json(orient="records", indent=1) writes
        train, dev = tmp_path / "train.json", tmp_path / "dev.json"
        train.write_text(json.dumps(train_rows, ensure_ascii=False, indent=1))
        dev.write_text(json.dumps(dev_rows, ensure_ascii=False, indent=1))
        columns = []
    elif fmt == "parquet":
        train, dev = (write_parquet(tmp_path / "train.parquet", train_rows),
                      write_parquet(tmp_path / "dev.parquet", dev_rows))
        columns = []
    else:
        import datasets
        datasets.DatasetDict({"train": datasets.Dataset.from_list(train_rows),
                              "dev": datasets.Dataset.from_list(dev_rows)}).save_to_disk(str(tmp_path / "dd"))
        train, dev, columns = f"{tmp_path / 'dd'}@train", f"{tmp_path / 'dd'}@dev", []
    run = tmp_path / "run"
    _run(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch", "--scratch-size", "tiny",
          "--epochs", "1", "--batch-size", "16", "--out", str(run), "--quiet", *columns], capsys)
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "contradiction", "1": "entailment", "2": "neutral"}
    out = _run(["eval", "--model-dir", str(run / "best"), "--file", str(dev), "--threads", "1", *columns], capsys)
    assert out.splitlines()[0].startswith("accuracy: ") and "neutral" in out
    _run(["predict", "--model-dir", str(run / "best"), "--file", str(dev), "--output", str(tmp_path / "p.json"),
          *columns], capsys)
    predictions = [json.loads(line) for line in (tmp_path / "p.json").read_text().splitlines()]
    assert len(predictions) == 24 and {p["label"] for p in predictions} <= set(NLI)
    assert [p["id"] for p in predictions] == ([f"q{i}" for i in range(24)] if fmt == "csv" else list(range(24)))


def test_label_unknown_to_the_model_names_file_and_line(tmp_path, capsys):
    run = tmp_path / "run"
    train = write_tsv(tmp_path / "train.tsv", nli_rows(60, 10))
    _run(["train", "--train-file", str(train), "--dev-file", str(train), "--model", "scratch", "--scratch-size",
          "tiny", "--max-steps", "1", "--out", str(run), "--quiet"], capsys)
    other = tmp_path / "other.tsv"
    other.write_text("花呗\t还款\tentailment\n借款\t还款\tunrelated\n", encoding="utf-8")
    assert main(["eval", "--model-dir", str(run / "best"), "--file", str(other)]) == 2
    err = capsys.readouterr().err
    assert "other.tsv:2: unknown label 'unrelated' (expected one of contradiction, entailment, neutral)" in err
    assert len(err.strip().splitlines()) == 1


def test_streaming_reads_a_headerless_tsv_and_collects_its_labels(tmp_path, capsys):
    run = tmp_path / "run"
    train, dev = write_tsv(tmp_path / "train.tsv", nli_rows(64, 11)), write_tsv(tmp_path / "dev.tsv", nli_rows(12, 12))
    _run(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch", "--scratch-size", "tiny",
          "--epochs", "1", "--batch-size", "16", "--streaming", "--out", str(run), "--quiet"], capsys)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "contradiction", "1": "entailment", "2": "neutral"}
    assert metrics["history"][-1]["step"] == 4  # 64 pairs / 16: every record once


def test_named_columns_the_file_lacks_are_reported_with_what_it_has(tmp_path):
    """A header that has one of two named text columns (and the named label column, which makes it a header)
    reports only the name it lacks, with the columns it has; JSON Lines name the first record's fields
    (skipping lines would not help either)."""
    named = tmp_path / "n.csv"
    named.write_text("q1,q2,gold\na,b,1\n")
    with pytest.raises(UserError, match=r"n\.csv: no field 'q3' \(columns: q1, q2, gold\)$"):
        read_pairs(PairFile(str(named), ("q1", "q3"), "gold"), ("0", "1"))
    lines = write_jsonl(tmp_path / "n.jsonl", [{"sentence1": "a", "sentence2": "b", "label": "1"}])
    with pytest.raises(UserError, match=r"n\.jsonl: no field 'foo' \(the first record's fields: sentence1, "
                                        r"sentence2, label\)$"):
        read_pairs(PairFile(str(lines), ("foo", "sentence2")), ("0", "1"))
