"""What `afqmc train` trains on: the training and dev pairs read once, the task they make (classes or
scores, :mod:`afqmc.data.task`), and the training batches of every epoch (in memory, length-grouped, or
streamed from the file)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader

from afqmc.commands.config import TrainConfig
from afqmc.data.batches import Pair, PairBatches, encode, length_grouped_batches
from afqmc.data.sources import PairFile, read_labelled, read_pairs
from afqmc.data.stream import StreamingPairBatches, iter_pairs, scan_records
from afqmc.data.task import as_scores, decide_task
from shared import distributed
from shared.collector import collector_paused
from shared.errors import UserError
from shared.sharding import batches_per_rank

log = logging.getLogger("pairtrain")
SCORE_LABELS = ["score"]  # a regression model's one output, as its config's id2label names it


@dataclass
class TrainingPairs:
    """The data of a run: ``labels`` the classes (``["score"]`` for a regression), ``counts`` training
    pairs per label, ``train`` the pairs in memory (None when streaming), ``records`` an iterable of them
    (for a scratch tokenizer), ``dev`` the dev pairs (scores as floats for a regression)."""
    source: PairFile
    labels: list[str]
    counts: list[int]
    train: list[Pair] | None
    records: Iterable[Pair]
    dev: list[Pair]


def read_training_pairs(cfg: TrainConfig) -> tuple[TrainConfig, TrainingPairs]:
    """Read the training and dev files, decide the task, and return the config with the task (and the
    ``--select-by auto`` it implies) resolved: what is recorded is what was used."""
    source = cfg.pair_file(cfg.train_file)
    if cfg.streaming:  # validate and count now; the records are read again batch by batch
        labels, counts = scan_records(source, cfg.label_list, cfg.skip_bad_lines)
        train, records = None, iter_pairs(source, labels, cfg.skip_bad_lines, report=False)
    else:
        train, labels = read_labelled(source, cfg.label_list, skip_bad=cfg.skip_bad_lines)
        records, counts = train, [0] * len(labels)
        for p in train:
            counts[p.label] += 1
    task, why = decide_task(cfg.task, labels)
    cfg = dataclasses.replace(cfg, task=task, select_by=cfg.select_by if cfg.select_by != "auto" else
                              "pearson" if task == "regression" else "accuracy")
    if task == "regression":
        return cfg, _scores(cfg, source, labels, train, why)
    if unseen := [label for label, count in zip(labels, counts) if count == 0]:  # only with --labels
        log.warning(f"{cfg.train_file}: no training pair has label {', '.join(unseen)} (named in --labels); "
                    "the model cannot learn to predict it")
    if (names := cfg.label_name_list) and len(names) != len(labels):
        raise UserError(f"--label-names: {len(names)} names for the {len(labels)} labels of {cfg.train_file} "
                        f"({', '.join(labels)})")
    dev = read_pairs(cfg.pair_file(cfg.dev_file), labels, skip_bad=cfg.skip_bad_lines)
    log.info(f"data: {sum(counts)} training pairs ({cfg.train_file}{', streamed' if cfg.streaming else ''}), "
             f"{len(dev)} dev pairs; labels "
             + ", ".join(lab if lab == name else f"{lab} ({name})" for lab, name in zip(labels, names or labels))
             + f"{'' if cfg.label_list else ' (from the training data)'}; task classification ({why})")
    return cfg, TrainingPairs(source, labels, counts, train, records, dev)


def _scores(cfg: TrainConfig, source: PairFile, labels: list[str], train: list[Pair] | None,
            why: str) -> TrainingPairs:
    if train is None:
        raise UserError("--streaming: a regression (score) task reads its training file into memory; "
                        "drop --streaming")
    train = as_scores(train, labels)
    dev, dev_labels = read_labelled(cfg.pair_file(cfg.dev_file), None, skip_bad=cfg.skip_bad_lines)
    dev = as_scores(dev, dev_labels)
    low, high = min(p.label for p in train), max(p.label for p in train)
    log.info(f"data: {len(train)} training pairs ({cfg.train_file}), {len(dev)} dev pairs; scores {low:g} to "
             f"{high:g}; task regression ({why}): one output, MSE, Pearson and Spearman")
    return TrainingPairs(source, list(SCORE_LABELS), [len(train)], train, train, dev)


class TrainData:
    """The training set: pre-tokenised in memory with length-grouped batches, or streamed from the
    file (``--streaming``) through DataLoader workers."""

    def __init__(self, cfg: TrainConfig, pairs: TrainingPairs, tokenizer: Any, match_types: bool):
        self.cfg, self.source, self.labels, self.pad = cfg, pairs.source, pairs.labels, tokenizer.pad_token_id
        self.label_counts, self.total = pairs.counts, sum(pairs.counts)  # training examples per label, in all
        if pairs.train is not None:
            with collector_paused():  # a list per pair and field, all kept: nothing to collect (shared.collector)
                self.x = encode(tokenizer, pairs.train, cfg.max_length, match_types)
                self.y = [p.label for p in pairs.train]
            self.lengths = [len(f["input_ids"]) for f in self.x]
            self.batches_per_epoch = len(train_plan(cfg, self.lengths, 0))
        else:
            if cfg.num_workers:  # each worker tokenises on its own; the tokenizer's thread pool would fight them
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            self.stream = StreamingPairBatches(pairs.source, self.labels, self.total, tokenizer, cfg.max_length,
                                               cfg.batch_size, cfg.seed, cfg.shuffle_buffer, cfg.skip_bad_lines,
                                               match_types)
            self.batches_per_epoch = batches_per_rank(self.total, cfg.batch_size, cfg.num_workers)

    def epoch(self, epoch: int, skip: int) -> Iterable[Any]:
        """This rank's batches of ``epoch`` after the first ``skip`` (resume)."""
        if not self.cfg.streaming:
            return PairBatches(self.x, self.y, train_plan(self.cfg, self.lengths, epoch), self.pad, skip=skip)
        self.stream.set_epoch(epoch)
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.cfg.num_workers,
                            generator=torch.Generator().manual_seed(self.cfg.seed + epoch))
        return itertools.islice(loader, skip, None)

    def typical_length(self) -> int:
        """Tokens in a median training pair (half of ``--max-length`` when streaming: the file is not in memory)."""
        return int(statistics.median(self.lengths)) if not self.cfg.streaming and self.lengths \
            else self.cfg.max_length // 2


def train_plan(cfg: TrainConfig, lengths: list[int], epoch: int) -> list[list[int]]:
    """This rank's batches for ``epoch``: global batches of batch_size x processes (length-grouped or
    random), each split across the processes, so every pair is used exactly once per epoch."""
    size = cfg.batch_size * distributed.world_size()
    plan = (length_grouped_batches(lengths, size, cfg.seed, epoch) if cfg.group_by_length
            else _shuffled_batches(len(lengths), size, cfg.seed, epoch))
    plan = distributed.split_batches(plan)
    distributed.record_plan(plan, epoch)
    return plan


def _shuffled_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
