"""Atomic file writes: a temporary file in the target's folder, fsync, then one rename.

A reader (or a crash) never sees a half-written model, report or JSON file: the target
holds either its old content or the new one. The folder is fsynced after the rename so the
new name survives a power cut, and a temporary left by a killed writer (its process id is
in the name) is removed by the next write of the same target.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]
STALE_SECONDS = 3600  # without process ids (non-POSIX): temporaries older than this are orphans
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file next to ``path``; on success it replaces ``path``.

    The parent folder must exist. On any exception the temporary file is removed and
    ``path`` is left as it was.

    Example:
        >>> import os, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "model.bin")
        >>> with atomic_write(target) as f:
        ...     _ = f.write(b"weights")
        >>> open(target, "rb").read()
        b'weights'
    """
    target = Path(path)
    folder = target.parent
    remove_orphans(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as e:  # name the file the caller asked for, not the temporary one
        raise type(e)(e.errno, e.strerror, str(target)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable: fsync the folder (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process finishes or removes its own temporaries before returning
    try:
        os.kill(pid, 0)  # POSIX only: signal 0 just asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_orphans(path: PathLike) -> None:
    """Delete temporaries of ``path`` whose writer is gone (killed mid-write)."""
    target = Path(path)
    for tmp in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        pid_text = tmp.name[len(target.name) + 2:].split(".", 1)[0]
        try:
            if os.name == "posix" and pid_text.isdigit():
                orphan = not _writer_alive(int(pid_text))
            else:
                orphan = time.time() - tmp.stat().st_mtime > STALE_SECONDS
            if orphan:
                tmp.unlink()
                logger.debug("removed %s, left by an interrupted write", tmp)
        except FileNotFoundError:
            continue


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))
