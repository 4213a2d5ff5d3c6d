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
- **Artifacts of several files** commit as a unit: :func:`commit_files` writes the members
  first under names the current artifact does not use (:func:`member_path`), the manifest
  (the model file naming each member with its SHA-256) last, then removes stale members;
  :func:`atomic_dir` builds a folder (a Triton model) beside its target and exchanges the two
  in one rename.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
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
        raise WriteTargetError(
            f"{given}: expected a regular file or a link to one, got a dangling symlink to {os.readlink(given)}"
        )
    try:
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        return target  # a new file (or a missing folder, reported when the temporary is made)
    if not stat.S_ISREG(st.st_mode):
        raise WriteTargetError(
            f"{given}: expected a regular file to write, got {mode_kind(st.st_mode)}; rnnx replaces only regular files"
        )
    return target


def path_kind(path: PathLike) -> str:
    """What is at ``path``, for messages: "a regular file", "a directory", "a FIFO (named pipe)",
    "a character device", ... or "no file"."""
    try:
        return mode_kind(os.stat(path).st_mode)
    except OSError:
        return "no file"


def read_regular_file(
    path: PathLike, limit: int, where: str, error: type[Exception], limit_why: str = ""
) -> bytes | None:
    """The bytes of the regular file at ``path``, read once and at most ``limit`` of them;
    None when there is no file. What is read is what the caller checks (a hash) and uses.

    Raises:
        error: ``where`` is a directory, a FIFO (never opened for a blocking read), a device
            or another non-regular file, or holds more than ``limit`` bytes (``limit_why``
            says why that is the limit); nothing is read then.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise error(f"{where}: expected a regular file, got a directory") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{where}: expected a regular file, got {mode_kind(st.st_mode)}")
        if st.st_size > limit:
            raise error(f"{where}: expected at most {limit} bytes{limit_why}, got {st.st_size}")
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise error(f"{where}: expected at most {limit} bytes, got more")
    return data


def mode_kind(mode: int) -> str:
    """What an ``os.stat`` mode is, for messages (see :func:`path_kind`)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    ):
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
    match = _TMP_TAIL.fullmatch(tmp_name[len(prefix) :])
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
        orphan = target.parent / name
        try:
            if orphan.is_dir() and not orphan.is_symlink():
                shutil.rmtree(orphan)  # a folder staged by atomic_dir
            else:
                orphan.unlink()
            logger.debug("removed %s, left by an interrupted write", name)
        except FileNotFoundError:
            continue


# ------------------------------------------------------------------ multi-file artifacts
def member_path(preferred: PathLike, data: bytes) -> Path:
    """Where a member of a multi-file artifact holding ``data`` is written.

    ``preferred`` when it is free or already holds exactly ``data``; otherwise (a file with
    other bytes is there: the current artifact may be using it) ``<stem>.<sha256[:12]><suffix>``
    beside it, so that committing the new artifact never changes a file the old one reads.
    """
    path = Path(preferred)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path
    digest = hashlib.sha256(data).hexdigest()  # once: members hold the weights
    if st.st_size == len(data) and _file_digest(path) == digest:
        return path
    return path.with_name(f"{path.stem}.{digest[:12]}{path.suffix}")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def commit_files(
    manifest: PathLike, manifest_data: bytes, members: Mapping[Path, bytes] | None = None, stale: Iterable[Path] = ()
) -> Path:
    """Make a multi-file artifact visible as a whole: members first, the manifest last.

    The manifest is the file a reader opens (a model file); it names every member with its
    SHA-256 (the ``rnnx.spec``), and readers check it. Members are written first, each
    atomically, under names no file of the current artifact uses (:func:`member_path`);
    then the manifest replaces the old one in one rename (the commit point); then the old
    artifact's members (``stale``) are removed. A crash before the commit leaves the old
    artifact whole (plus unreferenced new members the next commit removes), after it the
    new one.

    Returns:
        The manifest's path.
    """
    resolve_target(manifest)  # a device, FIFO or folder there fails before any member is written
    members = dict(members or {})
    for path, data in members.items():
        write_bytes_atomic(path, data)
    write_bytes_atomic(manifest, manifest_data)
    keep = {Path(p) for p in members} | {Path(manifest)}
    for path in stale:
        if Path(path) in keep:
            continue
        try:
            Path(path).unlink()
            logger.debug("removed %s, a member of the artifact %s replaced", path, manifest)
        except FileNotFoundError:
            continue
    return Path(manifest)


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Build a folder's new content in a private sibling; on success it replaces ``path`` whole.

    The sibling (``.<name>.<pid>-<thread>-<random>.tmp``) is yielded empty; write the new
    content into it. On success, entries of the old folder the new one lacks are carried
    over (hard links: other Triton model versions stay), and the two folders are exchanged
    in one ``renameat2(RENAME_EXCHANGE)`` (Linux), so a reader sees the old folder or the
    new one, never a mix and never none; elsewhere two renames leave a brief moment with no
    folder. On any exception the sibling is removed and ``path`` is left as it was.

    Raises:
        WriteTargetError: ``path`` exists and is not a folder.
    """
    target = Path(path)
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        kind = "a symlink" if target.is_symlink() else path_kind(target)
        raise WriteTargetError(f"{target}: expected a folder to replace, got {kind}")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(target)
    stage = temporary_name(target)
    stage.mkdir()
    try:
        yield stage
        if target.is_dir():
            shutil.copymode(target, stage)
            _carry_over(target, stage)
        _fsync_tree(stage)
        _swap_in(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)  # after the exchange: the old folder
    fsync_dir(target.parent)


def _carry_over(old: Path, new: Path) -> None:
    """Hard-link (or copy) into ``new`` every entry of ``old`` that ``new`` lacks, recursively."""
    for entry in os.scandir(old):
        dst = new / entry.name
        if entry.is_dir(follow_symlinks=False):
            if not dst.exists():
                dst.mkdir()
                shutil.copymode(entry.path, dst)
            if dst.is_dir():
                _carry_over(Path(entry.path), dst)
        elif not os.path.lexists(dst):
            try:
                os.link(entry.path, dst, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry.path, dst, follow_symlinks=False)


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, _files in os.walk(folder):
        fsync_dir(root)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if os.name == "posix" else None
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(stage: Path, target: Path) -> None:
    """Put ``stage`` at ``target``; the old ``target`` (if any) ends up at ``stage``."""
    if not os.path.lexists(target):
        try:
            os.rename(stage, target)
            stage.mkdir()  # the caller removes it
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if _exchange(stage, target):
        return
    aside = temporary_name(target)
    os.rename(target, aside)
    os.rename(stage, target)
    os.rename(aside, stage)


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path) as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))
