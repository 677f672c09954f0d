"""Helpers for side-by-side benchmarks: locate ../shared, run and time whole processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared"


def need_reference(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        print(f"skipped: {path} not found (the reference material beside the checkout is absent)")
        raise SystemExit(0)
    return path


def timed(cmd: list[str], **kw) -> tuple[float, str]:
    """Run a whole process; return (wall seconds, stdout). Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    seconds = time.perf_counter() - start
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}")
    return seconds, r.stdout
