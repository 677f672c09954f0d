"""ONNX Runtime behind the same pair model: export a model directory to ONNX (and a dynamically quantised
int8 twin), and run it where ``PairScorer`` runs the torch model.

Why: deployers on CPU reach for sentence-transformers' ``backend="onnx"`` and its int8 export. The same
is here, for every encoder family a model directory holds: ``torch.onnx.export`` (the ``torch.export``
based exporter) traces the directory's own pair model, first-token vector and head included, with
dynamic batch and sequence axes; ``onnxruntime.quantization.quantize_dynamic`` writes int8 weights
(activations quantised per batch at run time). Encoding, truncation, match types, labels and the saved
decision threshold stay the torch path's: only the forward pass changes.

Files, under ``DIR/onnx/``: ``model.onnx``, ``model.int8.onnx`` (with ``--int8``) and ``export.json``,
which records the SHA-256 of the weights exported from and of each ONNX file. Loading checks both: an
ONNX file exported from other weights than the directory holds now (stale), a truncated or corrupt
one, a missing one, and a missing ``onnxruntime`` are one-line errors, never a wrong answer. The
``onnx`` extra brings the exporter's and the runtime's packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from shared.atomic import write_json
from shared.errors import CheckpointError, UserError

FOLDER, RECORD = "onnx", "export.json"
FILES = {False: "model.onnx", True: "model.int8.onnx"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXTRA = "pip install 'pairtrain[onnx]'"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _Positional(nn.Module):
    """The pair model with positional inputs and a logits tensor out: what the exporter traces."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Without the exporter's progress lines, its warnings about absent torchvision ops and axis names, and
    the quantiser's pre-processing advice on the root logger (our own lines say what was written)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "root", "")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export(model_dir: Path, model: nn.Module, example: dict[str, torch.Tensor], int8: bool) -> list[Path]:
    """Write ``model_dir/onnx/`` (fp32, and int8 when asked) and its record; returns the files written.
    ``example``: a padded batch of two pairs as the tokenizer encodes them (what the exporter traces)."""
    try:
        import onnxruntime  # noqa: F401  (checked before a minute of export, not after)
    except ImportError:
        raise UserError(f"afqmc export needs onnx, onnxscript and onnxruntime: {EXTRA}") from None
    folder = model_dir / FOLDER
    folder.mkdir(exist_ok=True)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    written = [folder / FILES[False]]
    with tempfile.TemporaryDirectory(dir=folder) as tmp, _quiet_exporters():
        fp32 = Path(tmp) / FILES[False]
        torch.onnx.export(_Positional(model).eval(), tuple(example[k] for k in INPUTS), str(fp32),
                          input_names=list(INPUTS), output_names=["logits"], dynamo=True, external_data=False,
                          dynamic_shapes={k: {0: batch, 1: seq} for k in INPUTS}, verbose=False)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(Path(tmp) / FILES[True]), weight_type=QuantType.QInt8)
            written.append(folder / FILES[True])
        for path in written:
            os.replace(Path(tmp) / path.name, path)
    record = {"weights_sha256": _sha256(model_dir / "model.safetensors"),
              "files": {p.name: _sha256(p) for p in written}, "inputs": list(INPUTS), "torch": torch.__version__}
    write_json(folder / RECORD, record)
    return written


class OnnxPairModel(nn.Module):
    """An exported pair model run by ONNX Runtime, called as the torch model is (``model(**inputs).logits``
    is a float tensor), so evaluation and prediction code does not know which backend runs."""

    def __init__(self, session: Any, path: Path, config: Any):
        super().__init__()
        self.session, self.path, self.config = session, path, config  # config: the directory's, as torch's
        self.inputs = [i.name for i in session.get_inputs()]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask if attention_mask is not None
                else torch.ones_like(input_ids), "token_type_ids": token_type_ids if token_type_ids is not None
                else torch.zeros_like(input_ids)}
        out = self.session.run(None, {k: np.ascontiguousarray(feed[k].cpu().numpy()) for k in self.inputs})[0]
        return torch.from_numpy(out)


def load(model_dir: Path, config: Any, int8: bool, threads: int) -> OnnxPairModel:
    """The directory's ONNX model, checked against its record and its weights (see the module doc)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"--backend onnx needs onnxruntime: {EXTRA}") from None
    folder, name = model_dir / FOLDER, FILES[int8]
    path = folder / name
    hint = f"run `afqmc export --model-dir {model_dir}{' --int8' if int8 else ''}`"
    if not path.is_file() or not (folder / RECORD).is_file():
        raise UserError(f"{path}: no ONNX model{' (int8)' if int8 else ''} in this model directory; {hint}")
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        expected = record["files"][name]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder / RECORD}: unreadable or without {name}; {hint}") from None
    if record.get("weights_sha256") != _sha256(model_dir / "model.safetensors"):
        raise CheckpointError(f"{path}: stale, exported from other weights than {model_dir / 'model.safetensors'} "
                              f"holds now; {hint} again")
    if _sha256(path) != expected:
        raise CheckpointError(f"{path}: contents do not match {folder / RECORD} (truncated or corrupt); {hint}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a file it cannot parse
        raise CheckpointError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]}); {hint}") from None
    return OnnxPairModel(session, path, config)
