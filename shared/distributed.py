"""torchrun / DistributedDataParallel support: process group setup, rank-0 duties, data and
evaluation splitting that keep every example exactly once.

Without torchrun (no ``WORLD_SIZE`` in the environment) everything here is a no-op and the apps
behave exactly as a single process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from shared import testhooks
from shared.errors import UserError
from shared.sharding import rank_and_world, shard_bounds


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_name: str = "auto") -> str:
    """Join the process group when launched by torchrun; returns the device name to use.

    NCCL for CUDA, gloo otherwise. Each rank uses GPU ``LOCAL_RANK`` when CUDA is used.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return device_name
    if not dist.is_available():
        raise UserError("this PyTorch build has no torch.distributed support; run without torchrun")
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    return f"cuda:{local_rank}" if use_cuda else ("cpu" if device_name == "auto" else device_name)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Rank 0 (or a plain single process): the one that prints and writes files."""
    return rank_and_world()[0] == 0


def world_size() -> int:
    return rank_and_world()[1]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, else the model itself."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def split_batches(global_batches: Sequence[Sequence[int]], rank: int | None = None,
                  world: int | None = None) -> list[list[int]]:
    """This rank's part of each global batch (contiguous, balanced slices).

    Every rank gets the same number of batches (so DDP's collectives line up) and every index
    lands on exactly one rank. A final global batch too small to give each rank an example is
    merged into the one before it.
    """
    rank, world = rank_and_world(rank, world)
    batches = [list(b) for b in global_batches]
    if world > 1 and len(batches) > 1 and len(batches[-1]) < world:
        last = batches.pop()
        batches[-1] += last
    if world > 1 and batches and len(batches[-1]) < world:
        raise UserError(f"the data set has {len(batches[-1])} examples: fewer than the {world} processes")
    out = []
    for b in batches:
        lo, hi = shard_bounds(0, len(b), rank, world)
        out.append(b[lo:hi])
    return out


def eval_range(n: int) -> range:
    """The contiguous slice of ``n`` evaluation examples this rank evaluates (all when single)."""
    return range(*shard_bounds(0, n, *rank_and_world()))


def gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D per-example tensor across ranks in rank order (variable lengths)."""
    world = world_size()
    if world == 1:
        return t
    sizes = [torch.zeros(1, dtype=torch.long, device=t.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device))
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def collective_device() -> torch.device:
    """Where tensors for collectives live: the rank's GPU under NCCL, else the CPU (gloo)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. creating the run directory), then the others."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def rank_prefix() -> str:
    """``[rank N] `` under torchrun (read from the environment: the group may be gone already)."""
    return f"[rank {os.environ.get('RANK', '0')}] " if launched_by_torchrun() else ""


def summary(batch_size: int, accum_steps: int = 1) -> str:
    world = world_size()
    return (f"{world} process(es) x batch {batch_size}" + (f" x accumulation {accum_steps}" if accum_steps > 1
            else "") + f" = global batch {batch_size * accum_steps * world}")


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value of ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def record_plan(batches: Sequence[Sequence[int]], epoch: int, tag: str = "") -> None:
    """Let tests see this rank's training batches (see ``shared.testhooks.RECORD_PLAN``)."""
    testhooks.record_plan(batches, epoch, f"rank{rank_and_world()[0]}{tag}")
