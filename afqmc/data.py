"""Sentence-pair JSON Lines: strict reading, tokenisation, length-grouped batching.

Each line is ``{"sentence1": str, "sentence2": str, "label": "0"|"1"|0|1, "id": optional}``.
A UTF-8 BOM, CRLF line ends and blank lines are tolerated; every other defect is an error naming
the file and line (or, with ``skip_bad``, a counted and reported skip).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from shared.errors import UserError

log = logging.getLogger("pairtrain")


@dataclass(frozen=True)
class Pair:
    index: int  # 0-based position among the file's records (blank lines not counted)
    id: int | None
    sentence1: str
    sentence2: str
    label: int | None  # index into the label list, None when the file has no label


class BadLine(ValueError):
    pass


class MissingLabel(BadLine):
    pass


def _parse(raw: bytes, labels: Sequence[str], need_label: bool, index: int) -> Pair:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadLine(f"invalid UTF-8 at byte {e.start}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadLine(f"invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BadLine(f"expected a JSON object, found {type(obj).__name__}")
    sentences = []
    for key in ("sentence1", "sentence2"):
        if key not in obj:
            raise BadLine(f"missing field '{key}'")
        value = obj[key]
        if not isinstance(value, str):
            raise BadLine(f"field '{key}' must be a string, found {type(value).__name__}")
        if not value.strip():
            raise BadLine(f"field '{key}' is empty")
        sentences.append(value)
    label = None
    if "label" in obj and obj["label"] is not None:
        raw_label = obj["label"]
        if isinstance(raw_label, bool) or not isinstance(raw_label, (str, int)):
            raise BadLine(f"field 'label' must be a string or integer, found {type(raw_label).__name__}")
        if str(raw_label) not in labels:
            raise BadLine(f"unknown label {raw_label!r} (expected one of {', '.join(labels)})")
        label = labels.index(str(raw_label))
    elif need_label:
        raise MissingLabel("missing field 'label' (this command needs labelled data; "
                           "use `predict --file` for unlabelled files)")
    pid = obj.get("id")
    if pid is not None:
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            raise BadLine(f"field 'id' must be an integer, found {pid!r}") from None
    return Pair(index, pid, sentences[0], sentences[1], label)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, content without line end) for non-blank lines; BOM stripped."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a JSON Lines file")
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield number, line
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def read_pairs(path: str | Path, labels: Sequence[str] = ("0", "1"), need_label: bool = True,
               skip_bad: bool = False) -> list[Pair]:
    """All records of a JSONL file; raises UserError naming file:line on the first defect."""
    path = Path(path)
    pairs, skipped = [], 0
    for number, raw in _lines(path):
        try:
            pairs.append(_parse(raw, labels, need_label, len(pairs)))
        except BadLine as e:
            if not skip_bad:
                hint = "" if isinstance(e, MissingLabel) else " (use --skip-bad-lines to skip such lines)"
                raise UserError(f"{path}:{number}: {e}{hint}") from None
            skipped += 1
            if skipped <= 5:
                log.warning(f"skipping {path}:{number}: {e}")
    if skipped:
        log.warning(f"{path}: skipped {skipped} bad line(s), kept {len(pairs)}")
    if not pairs:
        raise UserError(f"{path}: no records (the file is empty)")
    return pairs


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
    enc = tokenizer(first, second, truncation=True, max_length=max_length, return_attention_mask=False)
    special = set(tokenizer.all_special_ids)
    return [{"input_ids": ids, "token_type_ids": match_token_types(ids, types, special) if match_types else types}
            for ids, types in zip(enc["input_ids"], enc["token_type_ids"])]


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
    target = torch.tensor(labels, dtype=torch.long) if labels is not None else None
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
