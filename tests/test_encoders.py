"""Issue 27: any encoder checkpoint a user brings, end to end, through the real CLI.

Each family's tiny random checkpoint (tests/encoder_checkpoints.py) goes train -> best/ -> eval, predict,
PairScorer and serve, which must all give the same labels; one non-WordPiece family is SIGKILLed and
resumed bit-identically; what cannot work is refused in one line.
"""

import json

import pytest

from afqmc.cli import main as afqmc_main
from afqmc_helpers import make_pairs, write_jsonl
from conftest import run_cli
from encoder_checkpoints import FAMILIES, make_family_checkpoint
from test_resume import _kill_resume_compare

pytest.importorskip("aiohttp", reason="afqmc serve needs the serve extra")


@pytest.mark.parametrize("family", [f if f == "bert-sentencepiece" else pytest.param(f, marks=pytest.mark.slow)
                                    for f in FAMILIES])
def test_family_trains_saves_and_serves_the_same_labels(family, tmp_path, capsys):
    from afqmc.model.scorer import PairScorer
    from test_serve import Server

    base = make_family_checkpoint(tmp_path / "base", family)
    train = write_jsonl(tmp_path / "train.json", make_pairs(64, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    out = tmp_path / "run"
    assert afqmc_main(["train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
                       "--epochs", "2", "--batch-size", "16", "--lr", "1e-3", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    expected_class = "BertForPairwiseCLS" if family.startswith("bert") else "ForPairwiseCLS"
    config = json.loads((out / "best" / "config.json").read_text())
    assert expected_class in config["architectures"][0]  # the directory says which encoder it holds
    assert config["model_type"] == ("bert" if family.startswith("bert") else family)
    assert ("fast forward" in log) == family.startswith("bert")

    assert afqmc_main(["eval", "--model-dir", str(out / "best"), "--file", str(dev)]) == 0
    best = json.loads((out / "metrics.json").read_text())["best_dev_accuracy"]
    assert f"accuracy: {100 * best:.2f}%" in capsys.readouterr().out  # the saved model scores as in training
    assert afqmc_main(["predict", "--model-dir", str(out / "best"), "--file", str(dev),
                       "--output", str(tmp_path / "p.jsonl")]) == 0
    predicted = [json.loads(line)["label"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    pairs = [[r["sentence1"], r["sentence2"]] for r in make_pairs(24, 1)]
    scorer = PairScorer.from_dir(out / "best")
    assert [r["label"] for r in scorer.predict([tuple(p) for p in pairs])] == predicted
    server = Server(out / "best")
    try:
        status, body = server.request("/predict", {"pairs": pairs})
        assert status == 200 and [p["label"] for p in body["predictions"]] == predicted
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_sentencepiece_family_resumes_bit_identically_after_sigkill(tmp_path):
    base = make_family_checkpoint(tmp_path / "base", "xlm-roberta")
    train = write_jsonl(tmp_path / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp_path / "dev.json", make_pairs(24, 1))
    args = ["afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", str(base),
            "--epochs", "2", "--batch-size", "16", "--save-every-steps", "2", "--lr", "1e-3", "--quiet"]
    _kill_resume_compare(args, tmp_path, total_steps=12, trials=2, seed=27)


@pytest.mark.slow  # builds models or starts processes; CI runs it
def test_decoder_only_and_seq2seq_models_are_refused(tmp_path):
    from transformers import GPT2Config, GPT2Model, T5Config, T5Model

    train = write_jsonl(tmp_path / "train.json", make_pairs(16, 0))
    for name, model, what in (("gpt2", GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64)),
                               "a decoder"),
                              ("t5", T5Model(T5Config(num_layers=1, d_model=16, d_ff=32, num_heads=2, d_kv=8,
                                                      vocab_size=64)), "an encoder-decoder model")):
        model.save_pretrained(tmp_path / name)
        make_family_checkpoint(tmp_path / "tok", "bert")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (tmp_path / name / f).write_bytes((tmp_path / "tok" / f).read_bytes())
        r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model",
                    str(tmp_path / name), "--out", str(tmp_path / f"run-{name}"))
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert f"model_type '{name}' is {what}" in r.stderr and "Supported encoder families: bert" in r.stderr


@pytest.mark.slow  # builds models or starts processes; CI runs it
def test_tokenizer_without_a_pair_template_is_refused(tmp_path):
    base = make_family_checkpoint(tmp_path / "base", "bert")
    spec = json.loads((base / "tokenizer.json").read_text())
    spec["post_processor"] = None  # a bare tokenizer.json: no [CLS]/[SEP] around the sentences
    (base / "tokenizer.json").write_text(json.dumps(spec))
    train = write_jsonl(tmp_path / "train.json", make_pairs(16, 0))
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model", str(base),
                "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "has no pair template" in r.stderr


def test_mlm_warmup_needs_a_bert_encoder(tmp_path):
    base = make_family_checkpoint(tmp_path / "base", "electra")
    train = write_jsonl(tmp_path / "train.json", make_pairs(16, 0))
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(train), "--model", str(base),
                "--mlm-epochs", "1", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "--mlm-epochs" in r.stderr and "electra" in r.stderr
