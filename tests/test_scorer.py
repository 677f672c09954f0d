"""Model directories are only loaded with their own tokenizer; the Python scorer encodes exactly as
`afqmc predict`; the README's Python section works as written on a scratch model."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from afqmc.model.bert import BertForPairwiseCLS
from afqmc.model.scorer import PairScorer
from afqmc.model.scratch_tokenizer import train_char_tokenizer
from afqmc_helpers import CHARS, make_pairs, write_jsonl
from conftest import REPO, run_cli


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scratch")
    train = write_jsonl(tmp / "train.json", make_pairs(96, 0))
    dev = write_jsonl(tmp / "dev.json", make_pairs(30, 1))
    r = run_cli("afqmc", "train", "--train-file", str(train), "--dev-file", str(dev), "--model", "scratch",
                "--scratch-size", "tiny", "--epochs", "2", "--batch-size", "16", "--out", str(tmp / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    return tmp


def test_model_dir_without_tokenizer_is_refused_with_the_fix(scratch_run, tmp_path):
    """The README's old recipe (from_pretrained -> save_pretrained) wrote no tokenizer, and eval then
    mapped every character to [UNK] and reported ~50% without a word."""
    model = BertForPairwiseCLS.from_pretrained(scratch_run / "run" / "best")
    model.save_pretrained(tmp_path / "my-model")
    r = run_cli("afqmc", "eval", "--model-dir", str(tmp_path / "my-model"), "--file", str(scratch_run / "dev.json"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "no tokenizer files" in r.stderr and "save_model_dir" in r.stderr
    r = run_cli("afqmc", "predict", "--model-dir", str(tmp_path / "my-model"), "--pair", "花呗", "花呗")
    assert r.returncode == 2 and "no tokenizer files" in r.stderr


def test_tokenizer_of_another_model_is_refused(scratch_run, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(scratch_run / "run" / "best", mixed)
    (mixed / "MANIFEST.json").unlink()
    (mixed / "tokenizer.json").unlink()
    other = train_char_tokenizer(CHARS + [chr(0x4E00 + i) for i in range(400)])  # a 450-token vocabulary
    other.backend_tokenizer.save(str(mixed / "tokenizer.json"))
    r = run_cli("afqmc", "eval", "--model-dir", str(mixed), "--file", str(scratch_run / "dev.json"))
    assert r.returncode == 2 and "do not belong together" in r.stderr and "tokens but the model" in r.stderr


def test_scorer_gives_exactly_what_predict_gives(scratch_run, tmp_path):
    best = scratch_run / "run" / "best"
    pairs = [(r["sentence1"], r["sentence2"]) for r in make_pairs(30, 1)]
    out = tmp_path / "pred.json"
    r = run_cli("afqmc", "predict", "--model-dir", str(best), "--file", str(scratch_run / "dev.json"),
                "--output", str(out))
    assert r.returncode == 0, r.stderr
    predicted = [json.loads(line)["label"] for line in out.read_text().splitlines()]
    scorer = PairScorer.from_dir(best)
    results = scorer.predict(pairs)
    assert [p["label"] for p in results] == predicted
    assert scorer.match_types  # a scratch model: its inputs carry the exact-match token types
    first = results[0]
    assert set(first["probabilities"]) == {"0", "1"} and abs(sum(first["probabilities"].values()) - 1) < 1e-5
    r = run_cli("afqmc", "predict", "--model-dir", str(best), "--pair", *pairs[0])
    shown = re.search(r"probability: ([0-9.]+)", r.stdout).group(1)
    assert f"label: {first['label']} " in r.stdout and abs(float(shown) - first["probability"]) < 1e-4
    with pytest.raises(Exception, match="two non-empty strings"):
        scorer.predict([("only one",)])
    with pytest.raises(Exception, match=r"pair 1: contains \\udfff, half of a UTF-16 surrogate pair"):
        scorer.predict([("a", "b"), ("a\udfff", "b")])


def test_readme_python_section_works_as_written_on_a_scratch_model(scratch_run, tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    code = next(b for b in blocks if "PairScorer" in b and "save_model_dir" in b)
    (tmp_path / "runs" / "afqmc").mkdir(parents=True)
    shutil.copytree(scratch_run / "run" / "best", tmp_path / "runs" / "afqmc" / "best")
    env_path = f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
    r = subprocess.run([sys.executable, "-c", env_path + code], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "my-model" / "tokenizer.json").is_file()
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] in ("0", "1") and lines[-1] in ("0", "1")


def test_scoring_leaves_the_garbage_collector_alone(scratch_run):
    """A server scores for its whole life: freezing per request would keep each request's cyclic
    garbage forever (shared.collector is for one-off stretches of a command only)."""
    import gc

    scorer = PairScorer.from_dir(scratch_run / "run" / "best")
    gc.unfreeze()
    scorer.predict([("花呗怎么还款", "花呗如何还钱")] * 3)
    assert gc.isenabled() and gc.get_freeze_count() == 0
