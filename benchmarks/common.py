"""Helpers for side-by-side benchmarks: locate ../shared, run and time whole processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The reference material beside the checkout; PAIRTRAIN_REFERENCE points elsewhere (e.g. a GPU machine's copy).
REFERENCE = Path(os.environ.get("PAIRTRAIN_REFERENCE") or REPO.parent / "shared")


def need_reference(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        print(f"skipped: {path} not found (the reference material beside the checkout is absent)")
        raise SystemExit(0)
    return path


def timed(cmd: list[str], **kw) -> tuple[float, str]:
    """Run a whole process; return (wall seconds, stdout). Fails loudly on a non-zero exit."""
    seconds, stdout, _ = measured(cmd, **kw)
    return seconds, stdout


def small_bert(train_jsonl: Path, out: Path) -> Path:
    """The 4x256 Chinese BERT of ../shared/baselines/make_small_bert.py, with a tokenizer that matches it.

    Under transformers 5 ``BertTokenizerFast(vocab_file=...)`` ignores the file, so the builder saves a
    5-token tokenizer (every character becomes [UNK]) beside a 1,324-row embedding. The tokenizer is
    rebuilt from the builder's own vocab.txt so that both sides of a benchmark see real token ids.
    """
    builder = need_reference("baselines", "make_small_bert.py")
    timed([sys.executable, str(builder), str(train_jsonl), str(out)])
    timed([sys.executable, "-c", "import sys; from transformers import BertTokenizerFast as T; "
           "T(vocab=sys.argv[1] + '/vocab.txt').save_pretrained(sys.argv[1])", str(out)])
    return out


def measured(cmd: list[str], **kw) -> tuple[float, str, int]:
    """Like :func:`timed`, and the process's peak resident memory in bytes (from its own ``wait4``
    rusage: this process alone, not the largest of every child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout = out.read()
        if proc.returncode != 0:
            print(stdout[-3000:], err.read()[-3000:], file=sys.stderr)
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return seconds, stdout, usage.ru_maxrss * 1024  # Linux reports KiB


def folder_bytes(path: Path) -> int:
    """Bytes on disk under ``path``, a hard-linked file counted once."""
    files = {(s.st_dev, s.st_ino): s.st_size for f in path.rglob("*") if f.is_file() and (s := f.stat())}
    return sum(files.values())
