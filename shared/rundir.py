"""The run directory both apps write, plus logging and the CLI error boundary.

Layout of ``OUT/``::

    metrics.json     final + per-epoch metrics, the config, elapsed seconds
    train.log        everything printed to the console (without progress bars)
    best/  last/     self-contained model directories that ``eval``/``predict`` load
    checkpoints/     resumable training checkpoints (``step-<global step>/``), newest kept
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from shared import distributed
from shared.errors import UserError

log = logging.getLogger("pairtrain")


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def last(self) -> Path:
        return self.root / "last"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def log_file(self) -> Path:
        return self.root / "train.log"


def ensure_writable_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove we can write there, or raise a UserError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write there ({e.strerror or e})") from None
    return path


def prepare_run_dir(out: str | os.PathLike, resume: bool) -> RunDir:
    """Validate ``--out``; refuse to overwrite an earlier run unless resuming it."""
    run = RunDir(ensure_writable_dir(out))
    if not resume and (run.checkpoints.exists() or run.metrics.exists()):
        raise UserError(f"--out {run.root}: already holds a run; pass --resume to continue it "
                        "or choose a new --out directory")
    return run


class _TqdmHandler(logging.Handler):
    """Console lines that do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        tqdm.write(self.format(record), file=stream)
        stream.flush()


def setup_logging(log_file: str | os.PathLike | None = None, quiet: bool = False) -> logging.Logger:
    """Console (and optionally file) logging for the ``pairtrain`` logger; idempotent."""
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    console = _TqdmHandler()
    console.setLevel(logging.WARNING if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if log_file is not None:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(fh)
    return log


def run_cli(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None, prog: str) -> int:
    """Run ``main(argv)``; user errors become one line on stderr and exit code 2.

    A torch.distributed process group that ``main`` joined is left on the way out.

    ``--debug`` anywhere on the command line shows the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        try:
            return int(main(argv) or 0)
        finally:
            distributed.teardown()  # leave a torchrun process group, whatever happened
    except UserError as e:
        if debug:
            raise
        print(f"{distributed.rank_prefix()}{prog}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ... on a path the user gave
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"{distributed.rank_prefix()}{prog}: error: {where}{e.strerror or e} (run with --debug for details)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # A bug, not bad input: keep the traceback, it is what a bug report needs.
        traceback.print_exc()
        print(f"{prog}: internal error (please report it with the traceback above)", file=sys.stderr)
        return 1
