"""Fashion-MNIST in its canonical IDX format: validated reading, download, in-memory batching.

The whole set is decoded once into tensors (60k images are 47 MB as uint8), so there is no
per-item Python or PIL work in the training loop.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import random
import urllib.request
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset

from fashion import DEFAULT_DATA_DIR
from shared.atomic import write_bytes
from shared.errors import UserError
from shared import distributed
from shared.sharding import batches_per_shard, current_shard, even_pieces, shard_bounds

log = logging.getLogger("pairtrain")

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
# Pixel statistics of the 60k training images (after scaling to [0, 1]).
MEAN, STD = 0.2860, 0.3530


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read an IDX file (raw or gzip, detected by content) and validate it.

    ``kind`` is ``"images"`` (magic 2051, N x 28 x 28) or ``"labels"`` (magic 2049, N, values 0-9).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    want_magic, ndim = (IMAGE_MAGIC, 3) if kind == "images" else (LABEL_MAGIC, 1)
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise UserError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != want_magic:
        raise UserError(f"{path}: bad magic number {magic} (expected {want_magic} for IDX {kind}); "
                        "is this the right file?")
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and dims[1:] != [28, 28]:
        raise UserError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    expected = int(np.prod(dims))
    body = len(raw) - header
    if body != expected:
        raise UserError(f"{path}: header says {dims[0]} {kind} ({expected} bytes of data) but the file "
                        f"has {body} bytes (truncated or corrupt)")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
    if kind == "labels" and arr.size and arr.max() > 9:
        bad = int(np.argmax(arr > 9))
        raise UserError(f"{path}: label {int(arr[bad])} at index {bad} is not a class 0-9")
    return arr


def _find(data_dir: Path, stem: str) -> Path | None:
    for folder in (data_dir, data_dir / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def download(data_dir: Path, stems: Sequence[str]) -> None:
    """Fetch the files ``stems`` (gzipped) from the canonical mirror into ``data_dir/FashionMNIST/raw``."""
    raw_dir = data_dir / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in (stem + ".gz" for stem in stems):
        md5 = MD5[name]
        target = raw_dir / name
        if target.is_file():
            continue
        log.info(f"downloading {MIRROR}{name}")
        try:
            with urllib.request.urlopen(MIRROR + name, timeout=30) as r:
                blob = r.read()
        except OSError as e:
            raise UserError(
                f"cannot download Fashion-MNIST ({name}) from {MIRROR}: {e}. Offline? Put the IDX "
                f"files (train-images-idx3-ubyte.gz, ... raw or gz) in a folder and pass --data-dir "
                f"FOLDER, or copy them into {raw_dir}") from None
        if hashlib.md5(blob).hexdigest() != md5:
            raise UserError(f"downloaded {name} has the wrong checksum; try again or use --data-dir")
        write_bytes(target, blob)


def load_split(data_dir: str | Path, split: str, allow_download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of ``split`` (``train`` or ``test``).

    Only the default ``data/`` may be created for a download: any other folder that does not exist
    is a mistyped path, and creating it would hide that.
    """
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir}: not a directory")
    if not data_dir.exists() and data_dir != Path(DEFAULT_DATA_DIR):
        raise UserError(f"--data-dir {data_dir}: does not exist (check the path; only the default "
                        f"{DEFAULT_DATA_DIR}/ is created for a download)")
    stems = FILES[split]
    paths = [_find(data_dir, s) for s in stems]
    if None in paths and allow_download:
        download(data_dir, stems)
        paths = [_find(data_dir, s) for s in stems]
    if None in paths:
        missing = stems[paths.index(None)]
        raise UserError(f"--data-dir {data_dir}: {missing}(.gz) not found (looked in {data_dir} and "
                        f"{data_dir / 'FashionMNIST' / 'raw'})")
    images, labels = read_idx(paths[0], "images"), read_idx(paths[1], "labels")
    if len(images) != len(labels):
        raise UserError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    return images, labels.astype(np.int64)


def to_tensor(images: np.ndarray, normalize: bool) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1], optionally standardised."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
    return x.sub_(MEAN).div_(STD) if normalize else x


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The sample order of one epoch: a function of (seed, epoch) only, so resume can recompute it."""
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def epoch_flips(n: int, seed: int, epoch: int, p: float) -> torch.Tensor | None:
    """Which of the ``n`` training images are mirrored left-right in ``epoch``: each with probability ``p``,
    drawn from (seed, epoch) only, so resume, DataLoader workers and every rank see the same flips.
    None when ``p`` is 0 (no augmentation)."""
    if p == 0:
        return None
    return torch.rand(n, generator=torch.Generator().manual_seed(2**40 + seed * 100_003 + epoch)) < p


def mirror(images: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """``images`` (B, 1, 28, 28) with those marked in ``flips`` (B,) mirrored left-right."""
    if flips is None:
        return images
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)


def chunk(order: torch.Tensor | Sequence[int], batch_size: int) -> list[torch.Tensor]:
    """Consecutive batches of ``batch_size`` indices (the last one may be shorter)."""
    order = torch.as_tensor(order)
    return list(order.split(batch_size))


class TensorBatches:
    """One epoch of ``(x, y)`` batches sliced from in-memory tensors by lists of indices,
    after dropping ``skip`` already-trained batches (resume); images marked in ``flips`` (one flag
    per row of ``x``, see :func:`epoch_flips`) come mirrored."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batches: Sequence[torch.Tensor | Sequence[int]],
                 skip: int = 0, flips: torch.Tensor | None = None):
        self.x, self.y, self.batches, self.skip = x, y, batches, skip
        self.flips = None if flips is None else flips.to(x.device)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self.batches[self.skip:]:
            idx = torch.as_tensor(idx, device=self.x.device)
            flips = None if self.flips is None else self.flips.index_select(0, idx)
            yield mirror(self.x.index_select(0, idx), flips), self.y.index_select(0, idx)


class FashionIterable(IterableDataset):
    """Streams ``[start, end)`` as batches; DataLoader workers and ranks narrow it through
    ``shared.sharding.worker_init_fn`` (the tutorial's start/end contract).

    Within its slice each worker visits samples in a (seed, epoch)-determined order and cuts them
    into the same number of batches as every other worker and rank (``batches_per_shard``), so
    distributed ranks stay in step and every sample is used exactly once per epoch.
    Use with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int = 0, shuffle: bool = True,
                 hflip: float = 0.0):
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.hflip = hflip
        self.start, self.end, self.epoch = 0, len(x), 0
        self.total = len(x)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx = list(range(self.start, self.end))
        if self.shuffle:
            random.Random(self.seed * 100_003 + self.epoch * 1_009 + self.start).shuffle(idx)
        pieces = even_pieces(len(idx), batches_per_shard(self.total, current_shard()[1], self.batch_size))
        batches = [idx[p.start:p.stop] for p in pieces]
        distributed.record_plan(batches, self.epoch, tag=f"s{current_shard()[0]}")
        flips = epoch_flips(len(self.x), self.seed, self.epoch, self.hflip)
        for b in batches:
            t = torch.tensor(b)
            yield mirror(self.x.index_select(0, t), None if flips is None else flips[t]), self.y.index_select(0, t)

    def narrowed_for_this_process(self) -> "FashionIterable":
        """A copy narrowed to this rank, for ``num_workers=0`` (no worker_init_fn runs then)."""
        copy = FashionIterable(self.x, self.y, self.batch_size, self.seed, self.shuffle, self.hflip)
        copy.start, copy.end = shard_bounds(self.start, self.end, *current_shard())
        copy.epoch, copy.total = self.epoch, self.total
        return copy


def validation_split(n: int, size: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, validation indices) of ``n`` training images: ``size`` of them (a fraction
    below 1 or a count) drawn by ``seed``, each side in ascending order. A function of its arguments
    only, so a resumed run holds out exactly the same images."""
    count = int(round(size * n)) if size < 1 else int(size)
    if size > 0 and not 1 <= count < n:
        raise UserError(f"--val-size {size:g}: holds out {count} of {n} training images; it must leave at least "
                        "one on each side")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7_919 + 104_729))
    return order[count:].sort().values, order[:count].sort().values
