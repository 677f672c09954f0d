"""Atomic writes: files that appear only complete, and directories that carry a manifest of digests.

Every write goes to a temporary name in the destination directory, is fsynced and then
``os.replace``d into place, so an interrupted save never leaves a half-written file under the
final name. Directories are built under a temporary name with a ``MANIFEST.json`` of SHA-256
digests and renamed when complete; :func:`verify_dir` checks a directory against its manifest.
Used for every file pairtrain writes (checkpoints, model directories, reports, metrics).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from shared import testhooks
from shared.errors import CheckpointError

MANIFEST = "MANIFEST.json"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's umask, read from /proc where it can be (``os.umask`` can only be read by setting it)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")


def as_os_error(e: BaseException, path: str | os.PathLike) -> OSError | None:
    """The OSError behind a library writer's failure, or None when it was not one.

    Library writers report a full disk in their own words: safetensors (Rust) raises ``SafetensorError:
    ... No space left on device (os error 28)``, and ``torch.save`` a ``RuntimeError: [enforce fail at
    inline_container.cc] ... file write failed`` that has lost the errno (see :class:`_ErrorKeepingFile`).
    Turned back into the OSError they were, every writer's ENOSPC/EDQUOT/EROFS/EIO/EFBIG becomes the same
    one-line error (``shared.rundir.run_cli``, ``shared.epochs``)."""
    if isinstance(e, OSError):
        return e
    if isinstance(e.__cause__, OSError):
        return e.__cause__
    if (found := _OS_ERROR_IN_TEXT.search(str(e))) is not None:
        number = int(found.group(1))
        return OSError(number, os.strerror(number), str(path))
    return None


class _ErrorKeepingFile:
    """A binary file that remembers the OSError its last failed write raised. ``torch.save`` writes
    through ``write`` from C++ and reports a failure as a RuntimeError without the errno; this keeps it."""

    def __init__(self, f: Any):
        self._f, self.error = f, None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Any]:
    """Open a binary file that appears at ``path`` only once fully written and fsynced.

    The file gets the permissions of any file the user creates (0666 less the umask), not
    ``mkstemp``'s private 0600: a shared run directory must stay readable by colleagues. A failed
    write raises the OSError it was (:func:`as_os_error`) and leaves the previous file as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    f = None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as raw:
            f = _ErrorKeepingFile(raw)
            yield f
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except Exception as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        error = f.error if f is not None and f.error is not None else as_os_error(e, path)
        if error is None or error is e:
            raise
        raise error from e
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, digests: dict[str, str] | None = None) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` (with a manifest) once complete.

    An existing ``path`` is moved aside and removed only after the new one is in place. ``digests``
    (file name -> SHA-256) stand in for hashing files whose digests are already known.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # as mkdir would, not mkdtemp's private 0700
        yield tmp
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        known = digests or {}
        manifest = {(name := str(p.relative_to(tmp))): known.get(name) or _sha256_file(p) for p in files}
        umask = current_umask()
        for p in files:
            os.chmod(p, 0o666 & ~umask)  # library writers (e.g. safetensors) may create files 0600
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        write_json(tmp / MANIFEST, {"files": manifest})
        _fsync_dir(tmp)
        testhooks.delay_save()
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        error = as_os_error(e, path)
        if error is None or error is e:
            raise
        raise error from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_dir(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Replace ``path`` atomically by a directory of hard links to ``source``'s files (copies where the
    file system cannot link): the same model saved twice costs its bytes once. Later atomic writes of
    either directory make new files, so the other keeps what it had."""
    source = Path(source)
    listed = json.loads((source / MANIFEST).read_text(encoding="utf-8"))["files"]
    with atomic_dir(path, digests=listed) as tmp:
        for name in listed:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, tmp / name)
            except OSError:
                shutil.copyfile(source / name, tmp / name)


def verify_dir(path: str | os.PathLike) -> None:
    """Check every file listed in ``path/MANIFEST.json``; raise CheckpointError on any mismatch.

    Directories without a manifest (e.g. written by other tools) are accepted as they are.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory")
    mf = path / MANIFEST
    if not mf.exists():
        return
    try:
        files = json.loads(mf.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{mf}: corrupt manifest ({e})") from None
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing (listed in {mf})")
        if _sha256_file(f) != digest:
            raise CheckpointError(f"{f}: contents do not match {mf} (truncated or corrupt)")
