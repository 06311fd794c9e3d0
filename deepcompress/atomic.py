"""Atomic output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import OutputError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing so that it appears whole or not at all.

    The data goes to a temporary file in the same folder, is flushed and fsynced,
    then renamed over ``path``. On any error the temporary file is removed and the
    target is left untouched. ``OSError`` (unwritable folder, full disk) becomes
    :class:`OutputError` with a one-line message.
    """
    target = check_output_path(path)
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask like open()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"no space left on device while writing {target}") from None
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a file can be created there, else :class:`OutputError`.

    Cheap checks a command can make before long work: the path is not a folder,
    and its folder exists and is a folder (not a regular file).
    """
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise OutputError(f"output path {target} is a directory")
    if not folder.is_dir():
        if folder.exists():
            raise OutputError(f"output folder {folder} is not a folder (it is a file)")
        raise OutputError(f"output folder {folder} does not exist")
    return target


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as fh:
        fh.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
