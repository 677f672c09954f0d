import itertools
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from shared.sharding import current_shard, make_worker_init_fn, narrow, shard_bounds, shard_range


class TutorialRange(IterableDataset):
    """The tutorial's dataset shape: iterates [start, end), narrowed by worker_init_fn."""

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __iter__(self):
        return iter(range(self.start, self.end))


class HelperRange(IterableDataset):
    """Shards itself in __iter__ with shard_range (works with num_workers=0)."""

    def __init__(self, n, rank, world):
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self):
        return iter(shard_range(0, self.n, self.rank, self.world))


def _collect(loader):
    return [int(x) for batch in loader for x in batch]


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("length", [0, 1, 7, 1000])
@pytest.mark.parametrize("workers", [0, 1, 3])
def test_worker_init_fn_exactly_once(workers, length, world):
    seen = []
    for rank in range(world):
        ds = TutorialRange(0, length)
        if workers == 0:  # no worker processes: the process itself is the only worker of its rank
            narrow(ds, *current_shard(rank, world))
        loader = DataLoader(ds, batch_size=4, num_workers=workers,
                            worker_init_fn=make_worker_init_fn(rank, world))
        seen += _collect(loader)
    assert len(seen) == length
    assert len(set(seen)) == length
    assert set(seen) == set(range(length))


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("length", [0, 1, 7, 1000])
@pytest.mark.parametrize("workers", [0, 1, 3])
def test_shard_range_helper_exactly_once(workers, length, world):
    seen = Counter()
    for rank in range(world):
        seen.update(_collect(DataLoader(HelperRange(length, rank, world), batch_size=5, num_workers=workers)))
    assert sum(seen.values()) == length
    assert sorted(seen) == list(range(length))


def test_tutorial_example_two_workers():
    # The tutorial's worked example: 10 items, 2 workers -> [0, 5) and [5, 10).
    assert shard_bounds(0, 10, 0, 2) == (0, 5)
    assert shard_bounds(0, 10, 1, 2) == (5, 10)


def test_bounds_balanced_and_contiguous():
    for n, k in itertools.product(range(0, 30), range(1, 9)):
        parts = [shard_bounds(3, 3 + n, i, k) for i in range(k)]
        assert parts[0][0] == 3 and parts[-1][1] == 3 + n
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        sizes = [hi - lo for lo, hi in parts]
        assert max(sizes) - min(sizes) <= 1


def test_shard_id_is_rank_major():
    # shard id = rank * num_workers + worker_id (checked in a real worker process)
    class Probe(IterableDataset):
        def __iter__(self):
            return iter([current_shard(1, 2)])

    loader = DataLoader(Probe(), batch_size=None, num_workers=3)
    assert sorted(tuple(x) for x in loader) == [(3, 6), (4, 6), (5, 6)]


def test_invalid_shard_rejected():
    with pytest.raises(ValueError):
        shard_bounds(0, 10, 2, 2)
    with pytest.raises(ValueError):
        current_shard(2, 2)
    assert torch.utils.data.get_worker_info() is None
