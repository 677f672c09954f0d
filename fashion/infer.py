"""Model directories (config + safetensors) and the eval / predict / export commands."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fashion import CLASSES, DEFAULT_DATA_DIR
from fashion.config import EvalConfig
from fashion.images import Item, load_item
from fashion.data import MEAN, STD, TensorBatches, chunk, load_split, to_tensor
from fashion.model import PixelInput, build_model
from fashion.plots import prediction_grid
from shared.atomic import atomic_dir, verify_dir, write_json
from shared.checkpoint import load_weights, load_whole_model, save_weights, save_whole_model
from shared.errors import CheckpointError, UserError
from shared.evaluation import evaluate, predict_proba
from shared.metrics import format_test_line, report_text, single_class_warning
from shared.record_files import record_format, write_records
from shared.report import write_eval_report
from shared.rundir import refuse_run_dir
from shared.precision import choose_precision
from shared.runtime import select_device

log = logging.getLogger("pairtrain")
MODEL_FORMAT = "fashion-model/1"


def save_model_dir(path: Path, model: nn.Module, arch: str, dropout: float, normalize: bool,
                   data_dir: str | None = None) -> None:
    """Write ``path/`` atomically: ``config.json`` + ``model.safetensors`` (+ manifest).

    ``data_dir`` (absolute) is where the model was trained: ``eval`` reads the test split there by default.
    A CNN's block layout is recorded as ``pool_first`` (absent in directories written before it: False).
    """
    config = {"format": MODEL_FORMAT, "arch": arch, "dropout": dropout, "normalize": normalize,
              "mean": MEAN, "std": STD, "classes": list(CLASSES), "data_dir": data_dir}
    if hasattr(model, "pool_first"):
        config["pool_first"] = model.pool_first
    with atomic_dir(path) as tmp:
        write_json(tmp / "config.json", config)
        save_weights(model.state_dict(), tmp / "model.safetensors")


def load_model(path: str | Path, trust_pickle: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """A model directory (safetensors) or, with ``trust_pickle``, a whole model saved by ``export``."""
    path = Path(path)
    if path.is_file():
        model = load_whole_model(path, trusted=trust_pickle)
        meta = getattr(model, "fashion_meta", None) or {"normalize": True}
        return model.eval(), meta
    if not path.exists():
        raise UserError(f"model directory {path}: not found")
    refuse_run_dir(path)
    verify_dir(path)
    cfg_file = path / "config.json"
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
        if meta.get("format") != MODEL_FORMAT:
            raise ValueError(f"format {meta.get('format')!r} is not {MODEL_FORMAT}")
        model = build_model(meta["arch"], meta.get("dropout", 0.0), pool_first=bool(meta.get("pool_first", False)))
    except FileNotFoundError:
        raise CheckpointError(f"{cfg_file}: missing; {path} is not a fashion model directory") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{cfg_file}: invalid model config ({e})") from None
    try:
        model.load_state_dict(load_weights(path / "model.safetensors"))
    except RuntimeError as e:  # shapes/keys do not match the config
        raise CheckpointError(f"{path / 'model.safetensors'}: does not match {cfg_file} ({e})") from None
    return model.eval(), meta


def eval_data_dir(requested: str | None, meta: dict[str, Any]) -> str:
    """``--data-dir`` if given, else the folder the model was trained on (when it still exists), else data/."""
    if requested is not None:
        return requested
    trained_on = meta.get("data_dir")
    if trained_on and Path(trained_on).is_dir():
        return trained_on
    return DEFAULT_DATA_DIR


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    model, meta = load_model(cfg.model_dir, cfg.trust_pickle)
    data_dir = eval_data_dir(cfg.data_dir, meta)
    images, labels = load_split(data_dir, cfg.split, allow_download=cfg.download)
    x, y = to_tensor(images, meta.get("normalize", True)), torch.from_numpy(labels)
    batches = TensorBatches(x, y, chunk(torch.arange(len(x)), cfg.batch_size))
    device = select_device(cfg.device)
    chosen = choose_precision(device, cfg.precision, model, cfg.batch_size, backward=False)
    log.info(f"precision: {chosen.describe()}")
    metrics = evaluate(model.to(device), batches, nn.CrossEntropyLoss(), device=device,
                       num_classes=len(CLASSES), autocast_dtype=chosen.autocast)
    log.info(format_test_line(metrics))
    log.info(report_text(metrics, CLASSES))
    log.info(f"data: the {cfg.split} split in {data_dir}")
    if cfg.report:
        write_eval_report(Path(cfg.report), metrics, CLASSES, f"{cfg.model_dir} on the {cfg.split} split")
    warning = single_class_warning(metrics, CLASSES)
    if warning:
        log.warning(warning)
    return metrics


def run_predict(model_dir: str, files: list[str], trust_pickle: bool, invert: str = "auto",
                grid: str | None = None, output: str | None = None) -> list[dict[str, Any]]:
    """Classify ``files``; one that cannot be read is reported and skipped, and the command fails at the
    end (after writing the others' results) so that a script notices."""
    kind = record_format(output) if output else None
    model, meta = load_model(model_dir, trust_pickle)
    items, failed = {}, []
    for f in files:
        try:
            items[f] = load_item(Path(f), invert)
        except UserError as e:
            if len(files) == 1:
                raise
            failed.append(str(e))
            log.warning(f"{e} (skipped)")
    results = _classify(model, meta, items) if items else []
    if output:
        write_records(output, results, kind)
        log.info(f"wrote {len(results)} predictions to {output}")
    if grid and results and prediction_grid(Path(grid), np.stack([i.pixels for i in items.values()]), results):
        log.info(f"wrote {grid}")
    if failed:
        raise UserError(f"{len(failed)} of {len(files)} files could not be read (first: {failed[0]})")
    return results


def _classify(model: nn.Module, meta: dict[str, Any], items: dict[str, Item]) -> list[dict[str, Any]]:
    x = torch.from_numpy(np.stack([i.pixels for i in items.values()])).unsqueeze(1)
    if meta.get("normalize", True):
        x = (x - MEAN) / STD
    probs = predict_proba(model, [x], device=torch.device("cpu"), progress=False)
    results = []
    for (f, item), p in zip(items.items(), probs):
        k = int(p.argmax())
        results.append({"file": f, "class": CLASSES[k], "index": k, "probability": float(p[k]),
                        "inverted": item.inverted, "probabilities": dict(zip(CLASSES, map(float, p)))})
        log.info(f"{f}: {CLASSES[k]} ({100 * p[k]:.1f}%)"
                 + ("" if item.why in ("asked", "a .npy array") else
                    f"  [{item.why}: {'inverted' if item.inverted else 'as is'}]"))
    return results


def run_export(model_dir: str, output: str) -> None:
    """Save the whole model with ``torch.save(model)`` as the tutorial does: a :class:`PixelInput` that
    takes pixels in [0, 1] and standardises them itself when the model was trained on standardised pixels."""
    net, meta = load_model(model_dir)
    normalize = meta.get("normalize", True)
    model = PixelInput(net, MEAN if normalize else None, STD if normalize else None).eval()
    # Inputs are plain pixels now: loaders (fashion eval/predict --trust-pickle) must not standardise again.
    model.fashion_meta = {"arch": meta["arch"], "normalize": False, "input": "pixels in [0, 1]",
                          "data_dir": meta.get("data_dir")}
    out = Path(output)
    if out.is_dir():
        raise UserError(f"--output {out}: is a directory, expected a file name such as model.pth")
    if not out.parent.is_dir():
        raise UserError(f"--output {out}: folder {out.parent} does not exist")
    save_whole_model(model, out)
    log.info(f"saved whole model to {out} (load it with --trust-pickle, or "
             f"shared.checkpoint.load_whole_model(path, trusted=True))")
