"""Atomic output: write to a temporary file beside the target, then rename.

The temporary file is ``.NAME.HOST-PID.XXXXXXXX.tmp`` in the target's folder. A
process killed with SIGKILL while writing cannot remove it, so every later
successful write of NAME removes the ones that a process of this host left
behind and that is no longer running (files of other hosts, which may share the
folder over a network file system, are left alone).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

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
    fd, tmp = temp_file_for(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            commit_temp(fh, tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise output_error(exc, target) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def temp_file_for(target: Path) -> tuple[int, str]:
    """(descriptor, path) of a new temporary file beside ``target``, named so that a later write of ``target``
    removes it if this process dies first; :class:`OutputError` if the folder cannot take it."""
    folder = target.parent
    try:
        return tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror}") from None


def commit_temp(fh: BinaryIO, tmp: str, target: Path) -> None:
    """Flush and fsync the temporary file ``tmp`` (open as ``fh``), give it the umask's mode and rename it over
    ``target``; then remove the temporary files of ``target`` that dead processes left. Raises OSError."""
    fh.flush()
    os.fchmod(fh.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; honour the umask like open()
    os.fsync(fh.fileno())
    os.replace(tmp, target)
    _remove_stale_temps(target)


def output_error(exc: OSError, target: Path) -> OutputError:
    """The one-line :class:`OutputError` for an OSError met while writing ``target``."""
    if exc.errno == errno.ENOSPC:
        return OutputError(f"no space left on device while writing {target}")
    return OutputError(f"cannot write {target}: {exc.strerror or exc}")


FALLOC_FL_INSERT_RANGE = 0x20  # linux/falloc.h
_FALLOCATE: Any = None  # libc's fallocate via ctypes, False where unavailable; looked up on first use


def _fallocate() -> Any:
    global _FALLOCATE
    if _FALLOCATE is None:
        _FALLOCATE = False
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).fallocate
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            fn.restype = ctypes.c_int
            _FALLOCATE = fn
        except (OSError, AttributeError):
            pass
    return _FALLOCATE


def insert_front(fh: BinaryIO, data: bytes) -> bool:
    """Put ``data`` in front of the contents of the file open as ``fh`` without reading or copying them: the
    file system moves them up in place (``fallocate`` with ``FALLOC_FL_INSERT_RANGE``: ext4, XFS), then
    ``data`` is written into the gap. ``len(data)`` must be a multiple of the file system's block size and the
    file must not be empty. Returns False, with the file unchanged, where that cannot be done (another
    system or file system, another block size)."""
    fh.flush()
    st = os.fstat(fh.fileno())
    fallocate = _fallocate()
    if not data or not st.st_size or not fallocate or not st.st_blksize or len(data) % st.st_blksize:
        return False
    if fallocate(fh.fileno(), FALLOC_FL_INSERT_RANGE, 0, len(data)) != 0:
        return False
    done = 0
    while done < len(data):
        done += os.pwrite(fh.fileno(), data[done:], done)
    return True


def check_output_path(
    path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """``path`` as a Path if a file can be created there, else :class:`OutputError`.

    Cheap checks a command can make before long work: the path is not a folder
    nor another non-regular file (a device such as /dev/null, a pipe), its folder exists, is a folder (not a regular file) and is writable, and it
    is none of ``inputs`` (the same path, or the same file through a symlink or
    a hard link), which writing the output would replace. A symlink is followed:
    the path returned is the file it points to, so the link stays a link.
    """
    target = Path(path)
    if target.is_symlink():  # write the file the link points to; replacing the link would break it
        target = Path(os.path.realpath(target))
    folder = target.parent
    for source in inputs:
        if same_file(target, Path(source)):
            raise OutputError(f"output {target} is the input file {source}; writing it would replace the input. "
                              "Choose another output path")
    if target.is_dir():
        raise OutputError(f"output path {target} is a directory")
    if target.exists() and not target.is_file():
        raise OutputError(f"output {target} exists and is not a regular file (a device, pipe or socket), which "
                          "an output written whole or not at all would replace; choose a file path")
    if not folder.is_dir():
        if folder.exists():
            raise OutputError(f"output folder {folder} is not a folder (it is a file)")
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to output folder {folder}: permission denied")
    return target


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: equal resolved paths, or (both existing) one inode."""
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:  # e.g. a symlink loop: not provably the same file
        return False


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path) as fh:
        fh.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(target: Path) -> str:
    import socket

    host = "".join(c if c.isalnum() or c == "-" else "_" for c in socket.gethostname()) or "host"
    return f".{target.name}.{host}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, and belongs to someone else
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Remove the temporary files of ``target`` left by dead processes of this host."""
    prefix = _temp_prefix(target)
    with contextlib.suppress(OSError):
        with os.scandir(target.parent) as entries:
            for entry in entries:
                name = entry.name
                if not (name.startswith(prefix) and name.endswith(".tmp")):
                    continue
                pid = name[len(prefix):].split(".", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                    _remove_quietly(entry.path)


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def prepare_folder(path: str | os.PathLike[str], what: str = "folder") -> Path:
    """Create folder ``path`` if needed and prove a file can be written in it, else :class:`OutputError`.

    Used before long work for folders a run will write into (the stage cache):
    it writes and removes a probe file, which also catches read-only file systems.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {what} {folder}: {exc.strerror or exc}") from None
    return folder


COPY_BYTES = 8 << 20
"""Bytes per read when :func:`copy_file` copies by hand (no ``os.copy_file_range``)."""


def copy_file(src: BinaryIO, dst: BinaryIO, length: int) -> None:
    """Append the first ``length`` bytes of file ``src`` to ``dst`` (both flushed; ``dst`` flushed after): in the
    kernel (``os.copy_file_range``) where it can, else through a buffer of :data:`COPY_BYTES`."""
    done = 0
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            while done < length:
                n = copy_range(src.fileno(), dst.fileno(), min(length - done, 1 << 30), done)
                if n <= 0:
                    break
                done += n
        except OSError:  # not supported here (another file system, an old kernel): copy the rest by hand
            pass
    src.seek(done)
    while done < length:
        block = src.read(min(COPY_BYTES, length - done))
        if not block:
            raise OutputError(f"a temporary file ended {length - done} bytes short of what was written to it")
        dst.write(block)
        done += len(block)
    dst.flush()
