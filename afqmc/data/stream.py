"""Training on a pair file (JSON Lines, TSV, CSV, ...) too large for memory (``afqmc train --streaming``).

The file is read sequentially by every (rank, DataLoader worker) shard, each keeping the records
of its own contiguous slice (``shared.sharding``), mixed through a bounded shuffle buffer and
tokenised batch by batch. Every shard yields the same number of batches, so distributed ranks
stay in step, and every record is used exactly once per epoch.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset

from afqmc.data.batches import Pair, collate, encode_texts
from afqmc.data.sources import PairFile, as_pairs, collected_labels, iter_records, refuse_header_as_data
from shared import distributed
from shared.sharding import batches_per_shard, current_shard, even_pieces, shard_bounds


def iter_pairs(source: PairFile, labels: Sequence[str], skip_bad: bool, report: bool = True) -> Iterator[Pair]:
    """Valid labelled records in file order, numbered among themselves (bad lines raise or are skipped)."""
    return as_pairs(iter_records(source, True, skip_bad, known=labels, report=report), labels)


def scan_records(source: PairFile, labels: Sequence[str] | None, skip_bad: bool) -> tuple[list[str], list[int]]:
    """One validating pass over the file (so errors surface before training starts): the label list
    (``labels``, or collected from the file when None) and the number of records with each label."""
    seen: Counter[str] = Counter()
    first = None
    for where, _, _, label, _ in iter_records(source, True, skip_bad, known=labels):
        first = first or (where, label)
        seen[label] += 1
    if labels is None:
        refuse_header_as_data(source, first, seen)
    labels = list(labels) if labels is not None else collected_labels(set(seen), source)
    return labels, [seen[label] for label in labels]


class StreamingPairBatches(IterableDataset):
    """Tokenised, padded ``(inputs, labels)`` batches of this shard's records, shuffled through a
    buffer of ``buffer_size`` records with an order determined by (seed, epoch, shard).
    Use with ``DataLoader(batch_size=None)``."""

    def __init__(self, source: PairFile, labels: Sequence[str], total: int, tokenizer: Any, max_length: int,
                 batch_size: int, seed: int, buffer_size: int, skip_bad: bool, match_types: bool):
        self.source, self.labels, self.total, self.tokenizer = source, tuple(labels), total, tokenizer
        self.max_length, self.batch_size, self.seed = max_length, batch_size, seed
        self.buffer_size, self.skip_bad, self.epoch = buffer_size, skip_bad, 0
        self.match_types = match_types

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batch(self, pairs: list[Pair]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features = encode_texts(self.tokenizer, [p.sentence1 for p in pairs], [p.sentence2 for p in pairs],
                                self.max_length, self.match_types)
        inputs, labels = collate(features, [p.label for p in pairs], self.tokenizer.pad_token_id)
        return inputs, labels

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        shard, shards = current_shard()
        lo, hi = shard_bounds(0, self.total, shard, shards)
        sizes = [len(p) for p in even_pieces(hi - lo, batches_per_shard(self.total, shards, self.batch_size))]
        rng = random.Random(self.seed * 1_000_003 + self.epoch * 1_009 + shard)
        buffer: list[Pair] = []
        plan: list[list[int]] = []

        def take(k: int) -> list[Pair]:
            picked = []
            for _ in range(k):  # swap-remove a random record
                j = rng.randrange(len(buffer))
                buffer[j], buffer[-1] = buffer[-1], buffer[j]
                picked.append(buffer.pop())
            plan.append([p.index for p in picked])
            return picked

        for pair in iter_pairs(self.source, self.labels, self.skip_bad, report=False):
            if pair.index >= hi:
                break
            if pair.index < lo:
                continue
            buffer.append(pair)
            if len(buffer) >= self.buffer_size and len(plan) < len(sizes):
                yield self._batch(take(sizes[len(plan)]))
        while len(plan) < len(sizes):
            yield self._batch(take(sizes[len(plan)]))
        distributed.record_plan(plan, self.epoch, tag=f"s{shard}")
