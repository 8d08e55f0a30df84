"""Files written atomically: a temporary file in the destination's directory, renamed over the
destination with ``os.replace`` (atomic on POSIX and Windows).  A crash leaves the old file or the
new one, never a truncated one; a failed write removes its temporary file."""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable, IO, Iterator

__all__ = ["atomic_path", "write_atomic", "write_text_atomic"]


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on some platforms (Windows): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yields a temporary path next to ``path`` (ending in ``suffix``, for writers that pick the
    format from the extension); renames it over ``path`` when the block succeeds."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], object], fsync: bool = True) -> str:
    """Calls ``write(file)`` on a binary temporary file and renames it over ``path``; with ``fsync``
    the data and the directory entry reach the disk first."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    if fsync:
        _fsync_dir(os.path.dirname(os.path.abspath(os.fspath(path))))
    return os.fspath(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> str:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")), fsync=False)
