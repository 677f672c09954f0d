import json

import pytest
import torch

from afqmc.cli import main
from afqmc.data.batches import collate, length_grouped_batches, match_token_types
from afqmc.data.sources import read_pairs
from afqmc.model.bert import BertForPairwiseCLS
from afqmc.model.modeldir import load_model_dir, save_model_dir
from afqmc_helpers import make_pairs, make_tiny_bert, write_jsonl
from conftest import run_cli
from shared.checkpoint import load_whole_model, save_whole_model
from shared.errors import UserError


@pytest.fixture
def pair_files(tmp_path):
    train = write_jsonl(tmp_path / "train.json", make_pairs(160, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(40, 1))
    test = write_jsonl(tmp_path / "test.json", make_pairs(25, 2), drop_label=True, ids=True)
    return train, dev, test


def test_train_eval_predict_with_local_model(pair_files, tmp_path):
    train, dev, test = pair_files
    base = make_tiny_bert(tmp_path / "tiny-bert")
    out = tmp_path / "run"
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                "--out", str(out), "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--log-interval", "5")
    assert r.returncode == 0, r.stderr
    assert "Epoch 1/2" in r.stdout and "epoch 1: train loss" in r.stdout and "dev accuracy" in r.stdout
    assert "Done!" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["dev_accuracy"] <= 1 and 0 <= m["dev_macro_f1"] <= 1
    assert len(m["history"]) == 2 and m["global_step"] == 20
    last = m["history"][-1]
    assert last["train_flops_per_example"] > 0 and "FLOP/s)" in r.stdout
    assert last["train_flops_per_second"] == pytest.approx(last["train_flops_per_example"]
                                                           * last["train_samples_per_second"])
    for d in ("best", "last"):
        names = {p.name for p in (out / d).iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", "MANIFEST.json"} <= names

    r = run_cli("afqmc", "eval", "--model-dir", str(out / "last"), "--file", str(dev))
    assert r.returncode == 0, r.stderr
    assert f"accuracy: {100 * m['dev_accuracy']:.2f}%" in r.stdout  # reproduces the run's number
    assert "confusion matrix" in r.stdout and "same meaning" not in r.stdout  # the data's labels: 0, 1
    assert m["classes"] == ["0", "1"]

    pred = tmp_path / "pred.json"
    r = run_cli("afqmc", "predict", "--model-dir", str(out / "best"), "--file", str(test), "--output", str(pred))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in pred.read_text().splitlines()]
    assert [row["id"] for row in rows] == list(range(1000, 1025))
    assert all(row["label"] in ("0", "1") for row in rows) and "accuracy" not in r.stdout

    r = run_cli("afqmc", "predict", "--model-dir", str(out / "best"), "--pair", "花呗怎么还款", "花呗如何还款")
    assert r.returncode == 0, r.stderr
    assert "label: " in r.stdout and "probability: " in r.stdout

    r = run_cli("afqmc", "eval", "--model-dir", str(out / "best"), "--file", str(test))
    assert r.returncode == 2 and "test.json:1: missing field 'label'" in r.stderr and "Traceback" not in r.stderr


def test_scratch_model_learns_offline_and_its_model_dir_reproduces_dev(pair_files, tmp_path, capsys):
    """The scratch recipe must genuinely learn a learnable pair signal (here: sentence2 is a shuffle
    of sentence1), and eval from best/ must feed the model the same exact-match token types."""
    train, dev, _ = pair_files
    rc = main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
               "--scratch-size", "tiny", "--out", str(tmp_path / "s"), "--epochs", "4", "--batch-size", "16",
               "--lr", "1e-3", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    best = json.loads((tmp_path / "s" / "metrics.json").read_text())["best_dev_accuracy"]
    assert best >= 0.9
    tok, model, labels = load_model_dir(tmp_path / "s" / "best")
    assert labels == ["0", "1"] and model.config.num_hidden_layers == 2
    assert model.config.match_token_types and model.config.type_vocab_size == 4
    tokens = tok.convert_ids_to_tokens(tok("花呗", "还款")["input_ids"])
    assert tokens == ["[CLS]", "花", "呗", "[SEP]", "还", "款", "[SEP]"]
    capsys.readouterr()
    assert main(["eval", "--model-dir", str(tmp_path / "s" / "best"), "--file", str(dev)]) == 0
    assert f"accuracy: {100 * best:.2f}%" in capsys.readouterr().out


def test_match_token_types_mark_characters_shared_by_the_two_sentences():
    # [CLS] 花 呗 借 [SEP] 呗 花 还 [SEP] with specials 2 and 3
    ids = [2, 10, 11, 12, 3, 11, 10, 13, 3]
    types = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert match_token_types(ids, types, {0, 2, 3}) == [0, 2, 2, 0, 0, 3, 3, 1, 1]
    assert match_token_types([2, 10, 3, 10, 3], [0, 0, 0, 1, 1], {2, 3}) == [0, 2, 0, 3, 1]


def test_save_pretrained_round_trip_identical_logits(tmp_path):
    base = make_tiny_bert(tmp_path / "tiny")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(base)
    model = BertForPairwiseCLS.from_pretrained(base, num_labels=3).eval()
    save_model_dir(tmp_path / "saved", model, tok)
    tok2, back, labels = load_model_dir(tmp_path / "saved")
    enc = tok(["花呗还款", "借款"], ["怎么还款", "利息"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**enc).logits, back(**tok2(["花呗还款", "借款"], ["怎么还款", "利息"],
                                                             padding=True, return_tensors="pt")).logits)
    assert len(labels) == 3 and model.classifier.out_features == 3
    # Whole-model pickle through shared's safe API.
    save_whole_model(model, tmp_path / "whole.pth")
    with pytest.raises(UserError, match="trusted"):
        load_whole_model(tmp_path / "whole.pth")
    again = load_whole_model(tmp_path / "whole.pth", trusted=True).eval()
    with torch.no_grad():
        assert torch.equal(again(**enc).logits, model(**enc).logits)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cls_only_top_layer_equals_plain_bert_forward(attn):
    """afqmc.model.bert_forward (fused QKV, [CLS]-only top layer without per-token keys and values, its own masks) is
    the same function of the same parameters as BertModel."""
    from transformers import BertConfig
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     attn_implementation=attn)
    model = BertForPairwiseCLS(cfg)
    ids = torch.randint(5, 50, (5, 11))
    mask = torch.ones_like(ids)
    for row, n in enumerate([11, 3, 7, 1, 9]):  # padded rows of different lengths
        mask[row, n:] = 0
    types = (torch.arange(11) > 4).long().expand(5, 11)
    for m, training in ((mask, True), (None, True), (mask, False), (None, False)):
        model.train(training)  # CPU training takes the matmul-softmax path, inference SDPA
        fast = model.encode_cls(ids, m, types)
        plain = model.encode_cls_full(ids, m, types)
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
        # Every parameter gets the same gradient (the top layer's key bias too: zero, but not None).
        params = list(model.bert.parameters())
        for g_fast, g_plain in zip(torch.autograd.grad(fast.square().sum(), params),
                                   torch.autograd.grad(plain.square().sum(), params)):
            torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=1e-5)


BAD_LINES = [
    (b'{"sentence1": "a", "sentence2": "b", "label": "0"\n', "invalid JSON"),
    (b'[1, 2]\n', "expected a JSON object, found list"),
    (b'42\n', "expected a JSON object, found int"),
    (b'{"sentence2": "b", "label": "0"}\n', "missing field 'sentence1'"),
    (b'{"sentence1": " ", "sentence2": "b", "label": "0"}\n', "field 'sentence1' is empty"),
    (b'{"sentence1": "a", "sentence2": 7, "label": "0"}\n', "'sentence2' must be a string, found int"),
    (b'{"sentence1": "a", "sentence2": "b", "label": "2"}\n', "unknown label '2'"),
    (b'{"sentence1": "a", "sentence2": "b", "label": true}\n', "'label' must be a string or a number"),
    (b'{"sentence1": "\xff\xfe", "sentence2": "b", "label": "0"}\n', "invalid UTF-8"),
    (b'{"sentence1": "a", "sentence2": "b"}\n', "missing field 'label'"),
]


@pytest.mark.parametrize("bad,message", BAD_LINES)
def test_bad_lines_name_file_and_line(tmp_path, bad, message):
    good = '{"sentence1": "花呗", "sentence2": "还款", "label": "1"}\n'.encode()
    path = tmp_path / "d.json"
    path.write_bytes(good + b"\n" + bad + good)
    with pytest.raises(UserError, match=rf"d\.json:3: .*{message[:20]}"):
        read_pairs(path)
    kept = read_pairs(path, skip_bad=True)
    assert len(kept) == 2


def test_bad_line_through_cli(tmp_path, capsys, pair_files):
    train, dev, _ = pair_files
    (tmp_path / "bad.json").write_bytes(train.read_bytes() + b"[1]\n")
    rc = main(["train", "--train-file", str(tmp_path / "bad.json"), "--dev-file", str(dev), "--model", "scratch",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json:161: expected a JSON object" in err and "Traceback" not in err


def test_bom_crlf_blank_lines_and_integer_labels(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'\xef\xbb\xbf{"sentence1": "a", "sentence2": "b", "label": 1}\r\n\r\n'
                     b'{"sentence1": "c", "sentence2": "d", "label": "0", "id": "7"}\r\n')
    pairs = read_pairs(path)
    assert [(p.sentence1, p.label, p.id, p.index) for p in pairs] == [("a", 1, None, 0), ("c", 0, 7, 1)]
    with pytest.raises(UserError, match="empty"):
        (tmp_path / "e.json").write_bytes(b"\n\n")
        read_pairs(tmp_path / "e.json")
    with pytest.raises(UserError, match="is a directory"):
        read_pairs(tmp_path)


def test_unknown_model_name_explains_offline_options(pair_files, tmp_path):
    train, dev, _ = pair_files
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model",
                "no-such/model-xyz", "--out", str(tmp_path / "o"), env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "--model no-such/model-xyz" in r.stderr and "--model scratch" in r.stderr
    assert "Traceback" not in r.stderr


def test_collate_pads_each_batch_to_its_longest_pair():
    feats = [{"input_ids": [2, 7, 3], "token_type_ids": [0, 0, 0]},
             {"input_ids": [2, 8, 9, 3, 4, 3], "token_type_ids": [0, 0, 0, 0, 1, 1]},
             {"input_ids": [2, 3], "token_type_ids": [0, 1]}]
    inputs, labels = collate(feats, [1, 0, 1], pad_id=0)
    assert inputs["input_ids"].tolist() == [[2, 7, 3, 0, 0, 0], [2, 8, 9, 3, 4, 3], [2, 3, 0, 0, 0, 0]]
    assert inputs["token_type_ids"].tolist() == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [0, 1, 0, 0, 0, 0]]
    assert inputs["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6, [1, 1, 0, 0, 0, 0]]
    assert labels.tolist() == [1, 0, 1] and collate(feats, None, 0)[1] is None


def test_length_grouped_batches_cover_once_and_cut_padding():
    import random
    rng = random.Random(0)
    lengths = [rng.randint(10, 80) for _ in range(3200)]
    batches = length_grouped_batches(lengths, 32, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(3200))
    assert batches != length_grouped_batches(lengths, 32, seed=1, epoch=1)
    assert batches == length_grouped_batches(lengths, 32, seed=1, epoch=0)
    padded = sum(32 * max(lengths[i] for i in b) for b in batches)
    random_batches = [list(range(i, i + 32)) for i in range(0, 3200, 32)]
    padded_random = sum(32 * max(lengths[i] for i in b) for b in random_batches)
    assert padded < 0.75 * padded_random


def test_mask_tokens_spares_special_and_padding():
    from afqmc.model.pretrain import mask_tokens
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (64, 40))
    ids[:, 0], ids[:, 20], ids[:, 39] = 2, 3, 3  # [CLS] ... [SEP] ... [SEP]
    attention = torch.ones_like(ids)
    attention[:, 30:] = 0
    special = torch.zeros(100, dtype=torch.bool)
    special[:5] = True
    masked, labels = mask_tokens(ids, attention, special, 4, 100, g)
    targets = labels != -100
    assert not targets[:, [0, 20]].any() and not targets[:, 30:].any()
    assert 0.10 < targets.float().sum() / (64 * 27) < 0.20
    assert torch.equal(labels[targets], ids[targets]) and torch.equal(masked[~targets], ids[~targets])
    assert (masked[targets] == 4).float().mean() > 0.6


def test_mlm_warmup_runs_and_changes_encoder(pair_files, tmp_path, capsys):
    train, dev, _ = pair_files
    rc = main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch", "--scratch-size",
               "tiny", "--mlm-epochs", "2", "--epochs", "1", "--out", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert rc == 0 and "masked-LM warm-up epoch 2/2" in out


def _plans_cover(folder, n, epoch, parts):
    files = sorted(folder.glob(f"rank*-epoch{epoch}.json"))
    assert len(files) == parts
    flat = [i for f in files for i in json.loads(f.read_text())]
    assert sorted(flat) == list(range(n))


def test_streaming_training_exactly_once(tmp_path, capsys, monkeypatch):
    train = write_jsonl(tmp_path / "train.json", make_pairs(101, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(20, 1))
    base = make_tiny_bert(tmp_path / "tiny")
    plans = tmp_path / "plans"
    plans.mkdir()
    monkeypatch.setenv("PAIRTRAIN_TEST_RECORD_PLAN", str(plans))
    args = ["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base), "--epochs", "2",
            "--batch-size", "8", "--streaming", "--num-workers", "2", "--shuffle-buffer", "16", "--lr", "1e-3"]
    assert main([*args, "--out", str(tmp_path / "full")]) == 0, capsys.readouterr().err
    for epoch in (0, 1):
        _plans_cover(plans, 101, epoch, parts=2)  # two workers, each record once
    m = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert m["global_step"] == 2 * 2 * 7  # shards of 50/51 records: ceil(50/8) = 7 batches per worker


def test_streaming_bad_line_fails_before_training(tmp_path, capsys, pair_files):
    _, dev, _ = pair_files
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"sentence1": "a", "sentence2": "b", "label": "0"}\n{"sentence1": 3}\n')
    rc = main(["train", "--train-file", str(bad), "--dev-file", str(dev), "--model", "scratch", "--streaming",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.json:2:" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "checkpoints").exists()
