"""--precision auto picks bf16 only where it is fast (issue 25): GPUs with bf16, CPUs with AMX."""

import torch

from shared import runtime


def test_auto_precision_needs_amx_on_a_cpu():
    cpu = torch.device("cpu")
    assert runtime.autocast_dtype(cpu, "fp32") is None and runtime.autocast_dtype(cpu, "bf16") is torch.bfloat16
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    # AVX512-BF16 without AMX trained slower in bf16 than in fp32: auto takes fp32 there.
    assert runtime.autocast_dtype(cpu, "auto") is (torch.bfloat16 if amx else None)
