import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared"  # ../shared: read-only reference data, absent for outside users


def write_idx(path: Path, arr: np.ndarray, magic: int, compress: bool = False) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    blob = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


def synthetic_fashion(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class k lights up a 6x6 patch at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, k in enumerate(labels):
        r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
        images[i, r:r + 6, c:c + 6] = 230
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(autouse=True, scope="session")
def _own_precision_timings(tmp_path_factory):
    """The suite remembers --precision auto's timings in a folder of its own (not the user's
    ~/.cache/pairtrain), shared by every test and CLI process it starts, so runs compare alike."""
    os.environ["PAIRTRAIN_CACHE"] = str(tmp_path_factory.mktemp("pairtrain-cache"))


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fmnist"
    d.mkdir()
    for split, n, seed, gz in (("train", 300, 0, True), ("t10k", 100, 1, False)):
        images, labels = synthetic_fashion(n, seed)
        write_idx(d / f"{split}-images-idx3-ubyte{'.gz' if gz else ''}", images, 2051, gz)
        write_idx(d / f"{split}-labels-idx1-ubyte{'.gz' if gz else ''}", labels, 2049, gz)
    return d


def run_cli(*args: str, timeout: int = 300, env: dict | None = None, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``python -m <app> ...`` as a user would, capturing output (from another ``cwd`` if given)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if cwd is not None:  # the apps are importable from anywhere, as after `pip install -e .`
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env=full_env)
