"""Verified saving and loading of weights, whole models and training checkpoints.

Every file and directory is written atomically (:mod:`shared.atomic`); safetensors files carry a
digest of their tensors in their metadata and checkpoint directories a manifest of file digests.
Loading verifies these, so a truncated or corrupt file is an error naming the path, never a
partial load.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as _st_load_file
from safetensors.torch import save as _st_save

from shared import testhooks
from shared.atomic import MANIFEST, atomic_dir, atomic_write, verify_dir, write_bytes
from shared.errors import CheckpointError

TRAIN_STATE = "checkpoint.pt"
CKPT_PREFIX = "step-"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _plain_tensors(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (e.g. tied weights): give each its own copy.
    seen: set[int] = set()
    out = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"state_dict entry {k!r} is a {type(v).__name__}, not a tensor")
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def save_weights(state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> None:
    """Save a state_dict atomically: safetensors by default, ``torch.save`` for ``.pt``/``.bin``."""
    path = Path(path)
    if path.suffix in (".pt", ".pth", ".bin"):
        with atomic_write(path) as f:
            torch.save(dict(state_dict), f)
        return
    tensors = _plain_tensors(state_dict)
    meta = {"format": "pt", **(metadata or {}), "sha256": _tensor_digest(tensors)}
    write_bytes(path, canonical_safetensors(_st_save(tensors, metadata=meta)))


def canonical_safetensors(blob: bytes) -> bytes:
    """``blob`` with its JSON header's keys sorted: the same weights then always give the same bytes.

    safetensors writes metadata keys in hash-map order, which changes from process to process, so
    checksums could not confirm that two saves (e.g. a resumed and an uninterrupted run) are identical.
    Sorting keeps the header's length (the same keys and values) and every tensor offset.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > size:  # cannot happen for a header safetensors wrote; keep the original then
        return blob
    return blob[:8] + text.ljust(size, b" ") + blob[8 + size:]


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state_dict saved by :func:`save_weights` (or any safetensors / weights-only file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found" if not path.exists() else f"{path}: not a file")
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            sd = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{path}: cannot load weights (truncated, corrupt or not a "
                                  f"weights-only file): {_first_line(e)}") from None
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: expected a state_dict, found {type(sd).__name__}")
        return sd
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = _st_load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({e})") from None
    if "sha256" in meta and _tensor_digest(tensors) != meta["sha256"]:
        raise CheckpointError(f"{path}: tensor data does not match its checksum (corrupt file)")
    return tensors


def save_whole_model(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """``torch.save(model)`` as in the tutorial (pickles the class reference), atomically."""
    with atomic_write(path) as f:
        torch.save(model, f)


def load_whole_model(path: str | os.PathLike, trusted: bool = False,
                     device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a pickled whole model. Requires ``trusted=True``: unpickling can run arbitrary code."""
    path = Path(path)
    if not trusted:
        raise CheckpointError(
            f"{path}: refusing to load a whole pickled model: unpickling runs code stored in the "
            "file. Pass trusted=True (CLI: --trust-pickle) only for files you created yourself; "
            "otherwise load weights (safetensors) into a freshly built model instead.")
    if not path.is_file():
        raise CheckpointError(f"{path}: model file not found")
    try:
        model = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load model (truncated or corrupt?): "
                              f"{_first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise CheckpointError(f"{path}: expected a pickled nn.Module, found {type(model).__name__}")
    return model


# ---- resumable training checkpoints -------------------------------------------------------


def save_training_checkpoint(root: str | os.PathLike, state: dict[str, Any], step: int,
                             keep: int = 2) -> Path:
    """Write ``root/step-<step>/`` (one self-describing dict + manifest); keep the newest ``keep``."""
    root = Path(root)
    final = root / f"{CKPT_PREFIX}{step:010d}"
    _check_free_space(root, final)
    with atomic_dir(final) as tmp:
        with atomic_write(tmp / TRAIN_STATE) as f:  # torch.save's failed writes come back as their OSError
            torch.save(state, f)
            testhooks.fail_save(step, str(tmp / TRAIN_STATE))
    for old in _checkpoint_dirs(root)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _check_free_space(root: Path, final: Path) -> None:
    """Fail before writing when the disk clearly cannot hold another checkpoint of the last one's size."""
    previous = _checkpoint_dirs(root)
    if not previous:
        return
    needed = sum(p.stat().st_size for p in previous[0].iterdir() if p.is_file())
    free = shutil.disk_usage(root).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device (a checkpoint needs about {needed / 2**20:.1f} MB, "
                                    f"{free / 2**20:.1f} MB are free)", str(final))


def newest_checkpoint_name(root: str | os.PathLike) -> str | None:
    """The name of the newest complete-looking checkpoint directory (``step-N``), or None."""
    dirs = [d for d in _checkpoint_dirs(Path(root)) if (d / MANIFEST).is_file()]
    return dirs[0].name if dirs else None


def _checkpoint_dirs(root: Path) -> list[Path]:
    """Completed-looking checkpoint dirs, newest first (temp dirs start with '.')."""
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX)
            and p.name[len(CKPT_PREFIX):].isdigit()]
    return sorted(dirs, key=lambda p: int(p.name[len(CKPT_PREFIX):]), reverse=True)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load one checkpoint directory, verifying its manifest first (weights only, no pickled code)."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        raise CheckpointError(f"{path}: incomplete checkpoint (no {MANIFEST})")
    verify_dir(path)
    try:
        state = torch.load(path / TRAIN_STATE, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path / TRAIN_STATE}: cannot load: {_first_line(e)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path / TRAIN_STATE}: not a training checkpoint")
    return state


def remove_partial_writes(root: str | os.PathLike) -> list[str]:
    """Delete temp directories left by saves that were interrupted (e.g. SIGKILL mid-write)."""
    root = Path(root)
    stale = [p for p in root.glob(f".{CKPT_PREFIX}*") if p.is_dir() and (".tmp-" in p.name or ".old-" in p.name)]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return [p.name for p in stale]


def latest_checkpoint(root: str | os.PathLike, warn: Any = print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint under ``root`` that loads and verifies; skipped ones are reported."""
    for d in _checkpoint_dirs(Path(root)):
        try:
            return d, load_training_checkpoint(d)
        except CheckpointError as e:
            warn(f"warning: skipping unusable checkpoint: {e}")
    return None
