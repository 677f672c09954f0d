"""`afqmc export`: add an ONNX model (and its int8 twin) to a model directory (afqmc.model.onnx_backend),
then check it against the torch model on a few pairs before saying it is done."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from afqmc.commands.config import ExportConfig
from afqmc.data.batches import Pair, PairBatches, length_sorted_batches
from afqmc.model import onnx_backend
from afqmc.model.scorer import PairScorer
from shared.errors import UserError

log = logging.getLogger("pairtrain")
# Probe pairs of different lengths (one padded against the other): torch and ONNX must agree on them.
PROBES = [("花呗怎么还款", "花呗如何还钱"), ("借呗能提额吗", "花呗逾期了会怎么样呢，会影响征信吗"),
          ("How do I repay?", "怎么还款"), ("一", "二")]


def run_export(cfg: ExportConfig) -> None:
    torch_scorer = PairScorer.from_dir(cfg.model_dir, device="cpu", precision="fp32")
    pairs = [Pair(i, None, a, b, None) for i, (a, b) in enumerate(PROBES[:2])]
    features = torch_scorer.encode(pairs)
    example, _ = next(iter(PairBatches(features, None, length_sorted_batches(features, 2),
                                       torch_scorer.tokenizer.pad_token_id)))
    started = time.perf_counter()
    written = onnx_backend.export(Path(cfg.model_dir), torch_scorer.model, example, cfg.int8)
    log.info(f"exported {', '.join(str(p) for p in written)} in {time.perf_counter() - started:.1f}s")
    reference = torch_scorer.outputs(PROBES)
    for int8 in (False, True) if cfg.int8 else (False,):
        got = PairScorer.from_dir(cfg.model_dir, backend="onnx", int8=int8, threads=cfg.threads).outputs(PROBES)
        diff = float(np.abs(got - reference).max())
        what = "int8" if int8 else "fp32"
        if not int8 and diff > 1e-4:  # the fp32 export must be the same function
            raise UserError(f"{written[0]}: the ONNX model differs from the torch model by {diff:.2e} on probe "
                            "pairs (more than 1e-4); please report it with the model's config.json")
        log.info(f"ONNX {what} vs torch fp32 on {len(PROBES)} probe pairs: largest difference {diff:.2e}")
