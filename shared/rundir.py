"""The run directory both apps write, plus logging and the CLI error boundary.

Layout of ``OUT/``::

    metrics.json     final + per-epoch metrics, the config, elapsed seconds
    run_config.json  the settings the run was started (or last resumed) with: what --resume alone reuses
    train.log        everything printed to the console (without progress bars)
    best/  last/     self-contained model directories that ``eval``/``predict`` load
    checkpoints/     resumable training checkpoints (``step-<global step>/``), newest kept
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm.auto import tqdm

from shared import distributed
from shared.collector import collector_paused, no_collection_at_exit
from shared.config import RUN_SETTINGS
from shared.errors import UserError, WriteFailed
from shared.interrupt import RunInterrupted

log = logging.getLogger("pairtrain")
RESULT = 25  # between INFO and WARNING: the final result, shown even with --quiet


def log_result(message: str) -> None:
    """Log the run's final result (the one line ``--quiet`` still prints on stdout)."""
    if distributed.is_main():
        log.log(RESULT, message)


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
    def settings(self) -> Path:
        return self.root / RUN_SETTINGS

    @property
    def log_file(self) -> Path:
        return self.root / "train.log"


def refuse_run_dir(path: Path) -> None:
    """A run directory given where a model directory is expected: say which model to load from it."""
    run = RunDir(path)
    if not (path / "MANIFEST.json").exists() and (run.best.is_dir() or run.checkpoints.is_dir()):
        raise UserError(f"{path}: a run directory, not a model directory; load {run.best} (the model selected "
                        f"on dev/validation) or {run.last} (the last one)")


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


LOCK_FILE = ".lock"


def lock_run_dir(root: Path) -> int:
    """Hold an exclusive lock on ``root`` for the life of this process (one trainer per run directory).

    A POSIX record lock (``lockf``), not ``flock``: it belongs to this process alone. An ``flock`` belongs
    to the open file, which forked DataLoader workers share, so after a SIGKILL of the trainer its
    orphaned workers held the lock for seconds and the next ``--resume`` was refused. A record lock is
    not inherited across ``fork`` and the OS drops it the moment its process ends, however it ends.
    (It is also dropped when this process closes any descriptor of the file: only this function opens it.)
    The holder's pid is written into the file for the message the next trainer prints.
    """
    import fcntl

    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EAGAIN):
            os.close(fd)
            raise
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"--out {root}: another training (pid {holder}) is using this run directory; wait for it "
                        "to finish (or stop it) or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd  # kept open (and locked) until the process exits


@contextlib.contextmanager
def open_run_dir(out: str | os.PathLike, resume: bool) -> Iterator[RunDir]:
    """``--out`` validated and locked by rank 0 for the block (other ranks wait for it, then use it).

    A fresh run into a directory that holds one is refused unless resuming it.
    """
    fd = None
    with distributed.main_process_first():
        run = RunDir(Path(out))
        if distributed.is_main():
            run = RunDir(ensure_writable_dir(out))
            fd = lock_run_dir(run.root)
            if not resume and (run.checkpoints.exists() or run.metrics.exists()):
                os.close(fd)
                raise UserError(f"--out {run.root}: already holds a run; pass --resume to continue it "
                                "or choose a new --out directory")
    try:
        yield run
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


class _TqdmHandler(logging.Handler):
    """Console lines that do not break an active progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout  # RESULT: stdout
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
    console.setLevel(RESULT if quiet else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if log_file is not None:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(fh)
    return log


def run_inference(cfg: Any, run: Callable[[Any], Any]) -> None:
    """An inference command (eval, predict, serve): console logging, ``--threads`` (fewer when other
    work keeps the cores busy), then ``run(cfg)``."""
    from shared.runtime import set_threads

    setup_logging()
    if hasattr(cfg, "threads") and (note := set_threads(cfg.threads, adapt=True)):
        log.info(note)
    run(cfg)


def _resume_command(prog: str, argv: Sequence[str]) -> str:
    return shlex.join([prog, *argv] + ([] if "--resume" in argv else ["--resume"]))


def run_cli(prepare: Callable[[Sequence[str]], Callable[[], object]], argv: Sequence[str] | None, prog: str) -> int:
    """Run the command that ``prepare(argv)`` returns (exit code 0); user errors become one line on stderr
    and exit code 2.

    ``prepare`` parses the arguments and imports what the command needs, with the garbage collector
    paused (mostly torch and transformers: see shared.collector); the command runs with it on. A
    torch.distributed process group that the command joined is left on the way out.

    ``--debug`` anywhere on the command line shows the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    no_collection_at_exit()  # a second or two of every process (shared.collector)
    try:
        try:
            with collector_paused():
                command = prepare(argv)
            command()
            return 0
        finally:
            distributed.teardown()  # leave a torchrun process group, whatever happened
    except UserError as e:
        if debug:
            raise
        print(f"{distributed.rank_prefix()}{prog}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (`afqmc eval ... | head -1`): stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except OSError as e:  # disk full, permissions, ... on a path the user gave
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"{distributed.rank_prefix()}{prog}: error: {where}{e.strerror or e} (run with --debug for details)",
              file=sys.stderr)
        return 1
    except RunInterrupted as e:  # a checkpoint was saved: say how to continue
        print(f"{distributed.rank_prefix()}{prog}: {e}; continue with `{_resume_command(prog, argv)}`",
              file=sys.stderr)
        return e.exit_code
    except WriteFailed as e:
        if debug:
            raise
        print(f"{distributed.rank_prefix()}{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside training, or a second Ctrl-C while saving
        hint = ""
        if argv and "train" in argv[:2]:
            hint = f"; the newest complete checkpoint is kept: continue with `{_resume_command(prog, argv)}`"
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception:
        # A bug, not bad input: keep the traceback, it is what a bug report needs.
        traceback.print_exc()
        print(f"{prog}: internal error (please report it with the traceback above)", file=sys.stderr)
        return 1
