"""Worker for the distributed-evaluation test (importable so torch.multiprocessing can spawn it)."""

import json

import torch
import torch.distributed as dist
from torch import nn

from shared import distributed
from shared.evaluation import evaluate


def problem(n=203):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), x, y


def batches(x, y, idx, bs=16):
    idx = list(idx)
    return [(x[idx[i:i + bs]], y[idx[i:i + bs]]) for i in range(0, len(idx), bs)]


def run(rank, world, init_file, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model, x, y = problem()
    m = evaluate(model, batches(x, y, distributed.eval_range(len(x))), nn.CrossEntropyLoss(),
                 device=torch.device("cpu"), num_classes=3, progress=False, gather=distributed.gather_cat)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(m, f)
    dist.destroy_process_group()
