"""Tiny sentence-pair data and a tiny BERT checkpoint built by the tests themselves."""

import json
import random
from pathlib import Path

CHARS = list("花呗借还款账单怎么为什么可以是不的了我能用开通额度提升分期利息逾期到期冻结支付宝银行卡信用")


def make_pairs(n: int, seed: int) -> list[dict]:
    """label 1: sentence2 is a shuffle of sentence1's characters; label 0: unrelated characters."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        s1 = "".join(rng.choice(CHARS) for _ in range(rng.randint(4, 14)))
        if i % 2:
            s2 = "".join(rng.sample(s1, len(s1)))
            label = "1"
        else:
            s2 = "".join(rng.choice(CHARS) for _ in range(rng.randint(4, 14)))
            label = "0"
        rows.append({"sentence1": s1, "sentence2": s2, "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict], drop_label: bool = False, ids: bool = False) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            row = dict(row)
            if drop_label:
                row.pop("label")
            if ids:
                row["id"] = 1000 + i
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def make_tiny_bert(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with a char vocabulary written here (stands in for a hub model)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS + list("abcdefghijklmnopqrstuvwxyz0123456789")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt"), tokenize_chinese_chars=True).save_pretrained(path)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    return path
