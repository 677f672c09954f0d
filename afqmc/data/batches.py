"""Sentence pairs in memory: tokenisation, collation, length-grouped batching.

Reading files (every format, columns, labels) is :mod:`afqmc.data.sources`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from itertools import chain
from typing import Any, Sequence

import torch


log = logging.getLogger("pairtrain")


@dataclass(frozen=True)
class Pair:
    index: int  # 0-based position among the file's records (blank lines not counted)
    id: int | str | None
    sentence1: str
    sentence2: str
    label: int | float | None  # index into the label list (a regression's score), None when the file has none
    where: str = ""  # file:line (or row) it was read from


def encode(tokenizer: Any, pairs: Sequence[Pair], max_length: int,
           match_types: bool) -> list[dict[str, list[int]]]:
    """Pair-encode ``[CLS] s1 [SEP] s2 [SEP]`` once, truncated to ``max_length``, unpadded.

    ``match_types``: mark the tokens that also occur in the other sentence (:func:`match_token_types`).
    """
    out: list[dict[str, list[int]]] = []
    for i in range(0, len(pairs), 2048):  # chunks keep memory flat; the fast tokenizer is parallel
        chunk = pairs[i:i + 2048]
        out += encode_texts(tokenizer, [p.sentence1 for p in chunk], [p.sentence2 for p in chunk], max_length,
                            match_types)
    return out


def encode_texts(tokenizer: Any, first: list[str], second: list[str], max_length: int,
                 match_types: bool) -> list[dict[str, list[int]]]:
    """Token ids and token types of each pair, as the tokenizer's pair template makes them.

    Token types are the tokenizer's own where it has them (BERT's 0/1 per sentence) and 0 where it has
    none (XLM-R's SentencePiece, ``<s> A </s></s> B </s>``: ``model_input_names`` without token types),
    which is what the model is fed by Hugging Face too. Exact-match types need to know which sentence a
    token is from, so they read that from the encoding (``sequence_ids``), whatever the template.
    """
    enc = tokenizer(first, second, truncation=True, max_length=max_length, return_attention_mask=False)
    own = enc.get("token_type_ids")
    special = set(tokenizer.all_special_ids)
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        if match_types:
            types = match_token_types(ids, sentence_of_tokens(enc.sequence_ids(i)), special)
        else:
            types = own[i] if own is not None else [0] * len(ids)
        out.append({"input_ids": ids, "token_type_ids": types})
    return out


def sentence_of_tokens(sequence_ids: Sequence[int | None]) -> list[int]:
    """0/1 per token for the sentence it belongs to; a special token (None) belongs to the sentence before
    it (the first sentence at the start): ``[CLS] A [SEP] B [SEP]`` -> 0 0 0 1 1, as BERT's token types."""
    current, out = 0, []
    for s in sequence_ids:
        current = current if s is None else s
        out.append(current)
    return out


def match_token_types(ids: Sequence[int], types: Sequence[int], special: set[int]) -> list[int]:
    """Token types 0/1 (first/second sentence) plus 2 where the token also occurs in the other sentence.

    An exact-match input feature (as in DrQA's reader): a model trained from scratch on a few
    thousand pairs does not discover on its own that shared characters signal similarity, and
    memorises instead; with the feature it starts from the overlap. Special tokens never match.
    """
    present = ({t for t, s in zip(ids, types) if s == 0} - special, {t for t, s in zip(ids, types) if s == 1} - special)
    return [s + 2 * (t in present[1 - s]) for t, s in zip(ids, types)]


def collate(features: Sequence[dict[str, list[int]]], labels: Sequence[int] | None,
            pad_id: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Pad a batch to its own longest pair (dynamic padding)."""
    lengths = torch.tensor([len(f["input_ids"]) for f in features])
    filled = torch.arange(int(lengths.max())) < lengths[:, None]
    ids = torch.full(filled.shape, pad_id, dtype=torch.long)
    types = torch.zeros(filled.shape, dtype=torch.long)
    # One tensor per field, scattered row-major into the unpadded cells (not one tensor per row).
    ids[filled] = torch.tensor(list(chain.from_iterable(f["input_ids"] for f in features)))
    types[filled] = torch.tensor(list(chain.from_iterable(f["token_type_ids"] for f in features)))
    mask = filled.long()
    # Class indices, or the scores of a regression (afqmc.data.task.as_scores): their type says which.
    target = None if labels is None else torch.tensor(
        labels, dtype=torch.float32 if labels and isinstance(labels[0], float) else torch.long)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}, target


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                           group_batches: int = 50) -> list[list[int]]:
    """Random batches of similar length: shuffle, sort within windows of ``group_batches``
    batches, then shuffle the batch order. A function of (seed, epoch) only (resume-safe)."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group_batches
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda i: lengths[i], reverse=True)
        batches += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def length_sorted_batches(features: Sequence[dict[str, list[int]]], batch_size: int,
                          indices: Sequence[int] | None = None) -> list[list[int]]:
    """Inference batches of similar length (over ``indices``, default all), longest first; callers
    restore input order from the indices.

    Longest first because the first batch then allocates the largest buffers and every later batch
    reuses that memory: shortest first made the allocator fetch fresh pages for nearly every batch,
    which cost ~20% of a whole prediction pass on CPU (and a batch too large for the GPU fails at once).
    """
    indices = range(len(features)) if indices is None else indices
    order = sorted(indices, key=lambda i: len(features[i]["input_ids"]), reverse=True)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class PairBatches:
    """Batches of pre-encoded pairs in a given index order (``skip`` batches dropped: resume)."""

    def __init__(self, features: Sequence[dict[str, list[int]]], labels: Sequence[int] | None,
                 batches: list[list[int]], pad_id: int, skip: int = 0):
        self.features, self.labels, self.batches, self.pad_id = features, labels, batches, pad_id
        self.skip = skip

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for idx in self.batches[self.skip:]:
            labels = [self.labels[i] for i in idx] if self.labels is not None else None
            yield collate([self.features[i] for i in idx], labels, self.pad_id)
