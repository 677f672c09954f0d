"""Exactly-once sharding of IterableDatasets across DataLoader workers and distributed ranks.

The tutorial's contract: a dataset exposing ``start``/``end`` is copied into each worker, and
``worker_init_fn`` narrows that copy to the worker's contiguous slice. Here the slice is per
(rank, worker): shard ``rank * num_workers + worker_id`` of ``world_size * num_workers``.
Slices are balanced (sizes differ by at most one) rather than the tutorial's ``ceil`` split,
which can leave trailing shards empty while others are full; both cover every index exactly once.
"""

from __future__ import annotations

import functools
from typing import Any

import torch.distributed as dist
from torch.utils.data import get_worker_info


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """This process's (rank, world_size): explicit values win, else torch.distributed, else (0, 1)."""
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid rank {rank} for world size {world_size}")
    return rank, world_size


def current_shard(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(shard_id, num_shards) for the calling process or DataLoader worker."""
    rank, world_size = rank_and_world(rank, world_size)
    info = get_worker_info()
    workers, worker_id = (info.num_workers, info.id) if info is not None else (1, 0)
    return rank * workers + worker_id, world_size * workers


def shard_bounds(start: int, end: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """The contiguous ``[lo, hi)`` slice of ``[start, end)`` owned by ``shard_id``."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"invalid shard {shard_id} of {num_shards}")
    n = max(0, end - start)
    base, extra = divmod(n, num_shards)
    lo = start + shard_id * base + min(shard_id, extra)
    return lo, lo + base + (1 if shard_id < extra else 0)


def shard_range(start: int, end: int, rank: int | None = None, world_size: int | None = None) -> range:
    """The indices an IterableDataset's ``__iter__`` should yield in this process/worker.

    Works with ``num_workers=0`` (the process is then the only worker of its rank).
    Use either this in ``__iter__`` or ``worker_init_fn``, not both.
    """
    return range(*shard_bounds(start, end, *current_shard(rank, world_size)))


def narrow(dataset: Any, shard_id: int, num_shards: int) -> None:
    """Narrow ``dataset.start``/``dataset.end`` in place to one shard (the tutorial's contract)."""
    dataset.start, dataset.end = shard_bounds(dataset.start, dataset.end, shard_id, num_shards)


def _init_worker(worker_id: int, rank: int | None, world_size: int | None) -> None:
    info = get_worker_info()
    narrow(info.dataset, *current_shard(rank, world_size))


def worker_init_fn(worker_id: int) -> None:
    """Pass as ``DataLoader(worker_init_fn=...)``: narrows each worker's dataset copy."""
    _init_worker(worker_id, None, None)


def make_worker_init_fn(rank: int | None = None, world_size: int | None = None) -> Any:
    """A picklable ``worker_init_fn`` with an explicit rank/world size (tests, custom launchers)."""
    return functools.partial(_init_worker, rank=rank, world_size=world_size)


def batches_per_shard(total: int, num_shards: int, batch_size: int) -> int:
    """How many batches every non-empty shard yields so that all shards run the same number of
    steps (what DistributedDataParallel needs): enough for the smallest shard to stay within
    ``batch_size``; the larger shards (at most one example more) make slightly bigger batches."""
    smallest = total // num_shards
    return max(1, -(-smallest // batch_size))


def even_pieces(n: int, pieces: int) -> list[range]:
    """``range(n)`` cut into ``pieces`` contiguous, balanced parts (no empty part when n >= pieces)."""
    return [range(*shard_bounds(0, n, i, pieces)) for i in range(min(pieces, n))]


def batches_per_rank(total: int, batch_size: int, workers: int) -> int:
    """Batches this process runs per epoch when each of its ``workers`` (0: in-process) yields
    ``batches_per_shard`` batches of its shard; the same on every rank."""
    rank_shard, ranks = current_shard()
    workers = max(workers, 1)
    shards = ranks * workers
    per_shard = batches_per_shard(total, shards, batch_size)
    bounds = (shard_bounds(0, total, rank_shard * workers + w, shards) for w in range(workers))
    return sum(per_shard for lo, hi in bounds if hi > lo)
