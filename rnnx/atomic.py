"""Atomic file writes: a temporary file in the target's folder, fsync, then one rename.

The guarantees (see docs/guides/files.md):

- **Whole or nothing.** A reader (or a crash, ``kill -9``, a full disk) never sees a
  half-written file: the target holds either its old content or the new one. The folder is
  fsynced after the rename so the new name survives a power cut.
- **The mode a plain** ``open(path, "w")`` **gives.** A new file gets ``0o666 & ~umask``
  (0644 under the usual umask 022), so a server running as another user can read it; a file
  that is replaced keeps its mode.
- **Only regular files are replaced.** A device, FIFO or folder at the target is refused with
  :class:`~rnnx.errors.WriteTargetError` and left as it was.
- **Symlinks are written through**: the file the link points to is replaced atomically (in
  its own folder) and the link stays a link. A dangling link is refused.
- **One temporary per writer**: ``.<name>.<pid>-<thread>-<random>.tmp``, so threads and
  processes writing one path never collide; the last complete write wins.
- **Orphans**: a temporary of the same target whose writing process no longer exists (it was
  killed mid-write) is removed by the next write. A temporary of this process (another
  thread may be writing it) or of a live process is never touched (POSIX only; elsewhere
  orphans are left alone).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Union

from rnnx.errors import WriteTargetError

PathLike = Union[str, "os.PathLike[str]"]
_TMP_TAIL = re.compile(r"(\d+)-(\d+)-([0-9a-f]{12})\.tmp")  # <pid>-<thread>-<random>.tmp
_UMASK_LOCK = threading.Lock()
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file next to ``path``; on success it replaces ``path``.

    The parent folder must exist. On any exception the temporary file is removed and
    ``path`` is left as it was.

    Raises:
        WriteTargetError: ``path`` is a device, FIFO, folder or dangling symlink.
        OSError: the folder is missing or not writable (named after ``path``).

    Example:
        >>> import os, tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "model.bin")
        >>> with atomic_write(target) as f:
        ...     _ = f.write(b"weights")
        >>> open(target, "rb").read()
        b'weights'
    """
    target = resolve_target(path)
    mode = _final_mode(target)
    remove_orphans(target)
    fd, tmp = _create_temporary(target, Path(path))
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def resolve_target(path: PathLike) -> Path:
    """The regular file a write of ``path`` replaces: symlinks followed, anything else refused.

    Raises:
        WriteTargetError: a device, FIFO, socket, folder, or a symlink to nothing.
    """
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    if given.is_symlink() and not os.path.lexists(target):
        raise WriteTargetError(f"{given}: expected a regular file or a link to one, "
                               f"got a dangling symlink to {os.readlink(given)}")
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return target  # a new file (or a missing folder, reported when the temporary is made)
    if not stat.S_ISREG(st.st_mode):
        raise WriteTargetError(f"{given}: expected a regular file to write, got {mode_kind(st.st_mode)}; "
                               f"rnnx replaces only regular files")
    return target


def path_kind(path: PathLike) -> str:
    """What is at ``path``, for messages: "a regular file", "a directory", "a FIFO (named pipe)",
    "a character device", ... or "no file"."""
    try:
        return mode_kind(os.stat(path).st_mode)
    except OSError:
        return "no file"


def mode_kind(mode: int) -> str:
    """What an ``os.stat`` mode is, for messages (see :func:`path_kind`)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"a file of type {stat.S_IFMT(mode):o}"


def _final_mode(target: Path) -> int:
    """The replaced file's mode, or what ``open(target, "w")`` would create under the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (the only portable way to read it)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def temporary_name(target: PathLike) -> Path:
    """A fresh temporary path beside ``target``: ``.<name>.<pid>-<thread id>-<random>.tmp``."""
    target = Path(target)
    tail = f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(6)}.tmp"
    return target.with_name(f".{target.name}.{tail}")


def _create_temporary(target: Path, asked: Path) -> tuple[int, Path]:
    """Create this writer's temporary (owner-only until it is complete)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = temporary_name(target)
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue  # 48 random bits collided: draw again
        except OSError as e:  # name the file the caller asked for, not the temporary one
            raise type(e)(e.errno, e.strerror, str(asked)) from e


def fsync_dir(folder: PathLike) -> None:
    """Make a rename durable: fsync the folder (POSIX; a no-op where folders cannot be opened)."""
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


def _writer_gone(pid: int) -> bool:
    """True only when process ``pid`` provably does not exist (never for this process)."""
    if os.name != "posix" or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


def _writer_pid(target: Path, tmp_name: str) -> int | None:
    """The writer's pid if ``tmp_name`` is a temporary of exactly ``target``, else None."""
    prefix = f".{target.name}."
    if not tmp_name.startswith(prefix):
        return None
    match = _TMP_TAIL.fullmatch(tmp_name[len(prefix):])
    return int(match.group(1)) if match else None


def remove_orphans(path: PathLike) -> None:
    """Delete temporaries of exactly ``path`` whose writing process is gone (killed mid-write)."""
    target = Path(path)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        pid = _writer_pid(target, name)
        if pid is None or not _writer_gone(pid):
            continue
        try:
            (target.parent / name).unlink()
            logger.debug("removed %s, left by an interrupted write", name)
        except FileNotFoundError:
            continue


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))
