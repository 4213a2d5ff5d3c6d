"""``rnnx.atomic``: a write either completes or leaves the old file untouched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rnnx.atomic import (
    atomic_write,
    remove_orphans,
    temporary_name,
    write_bytes_atomic,
    write_text_atomic,
)
from rnnx.errors import RnnxError, WriteTargetError


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="disk vanished"):
        with atomic_write(target) as f:
            f.write(b"half a new mo")
            raise RuntimeError("disk vanished")
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_a_write_replaces_the_file(tmp_path) -> None:
    target = write_text_atomic(tmp_path / "r.json", "{}\n")
    assert target.read_text() == "{}\n" and len(list(tmp_path.iterdir())) == 1


def test_an_unwritable_folder_is_reported_under_the_target_name(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError) as info:
        write_text_atomic(tmp_path / "afile" / "r.json", "{}")
    assert info.value.filename == str(tmp_path / "afile" / "r.json")


# --- the writer users can trust (issue 16) ---------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_file_gets_the_mode_open_would_give_under_the_umask(tmp_path, umask022) -> None:
    target = write_bytes_atomic(tmp_path / "model.onnx", b"m")
    plain = tmp_path / "plain"
    with open(plain, "w"):
        pass
    assert _mode(target) == _mode(plain) == 0o644


def test_a_new_file_follows_a_stricter_umask(tmp_path) -> None:
    old = os.umask(0o077)
    try:
        target = write_bytes_atomic(tmp_path / "state.npz", b"s")
    finally:
        os.umask(old)
    assert _mode(target) == 0o600


def test_a_replaced_file_keeps_its_mode(tmp_path, umask022) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_bytes_atomic(target, b"new")
    assert _mode(target) == 0o640 and target.read_bytes() == b"new"


@pytest.mark.parametrize("kind", ["fifo", "folder", "chardev"])
def test_a_target_that_is_not_a_regular_file_is_refused(tmp_path, kind) -> None:
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "folder":
        target = tmp_path / "folder"
        target.mkdir()
    else:
        target = Path("/dev/null")
    before = target.stat()
    with pytest.raises(WriteTargetError, match=f"{target}.*expected a regular file") as info:
        write_bytes_atomic(target, b"data")
    assert isinstance(info.value, RnnxError)
    after = target.stat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name] if target.parent == tmp_path else [])


def test_a_symlink_is_written_through_to_its_target(tmp_path) -> None:
    real = tmp_path / "releases" / "model.onnx"
    real.parent.mkdir()
    real.write_bytes(b"v1")
    real.chmod(0o640)
    link = tmp_path / "current.onnx"
    link.symlink_to(real)
    write_bytes_atomic(link, b"v2")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"v2" and _mode(real) == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["model.onnx"]


def test_a_dangling_symlink_is_refused(tmp_path) -> None:
    link = tmp_path / "current.onnx"
    link.symlink_to(tmp_path / "nowhere" / "model.onnx")
    with pytest.raises(WriteTargetError, match="dangling"):
        write_bytes_atomic(link, b"v2")
    assert link.is_symlink()


def test_temporaries_are_unique_per_thread_and_call(tmp_path) -> None:
    names = {temporary_name(tmp_path / "m.onnx").name for _ in range(50)}
    other: list[str] = []
    t = threading.Thread(target=lambda: other.append(temporary_name(tmp_path / "m.onnx").name))
    t.start()
    t.join()
    assert len(names) == 50 and other[0] not in names
    assert all(n.startswith(f".m.onnx.{os.getpid()}-") and n.endswith(".tmp") for n in names)


@pytest.mark.parametrize("threads,saves", [(2, 100), (8, 150)], ids=["2x100", "8x150"])
def test_concurrent_writers_from_threads_to_one_path_all_succeed(tmp_path, threads, saves) -> None:
    target = tmp_path / "state.npz"
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        for i in range(saves):
            try:
                write_bytes_atomic(target, f"{k}:{i}".encode() * 100)
            except BaseException as e:  # noqa: BLE001 - every failure is counted
                errors.append(e)

    pool = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    body = target.read_bytes()
    assert body == body[: len(body) // 100] * 100  # one complete file, from one writer
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


_WRITER = """
import sys
from rnnx.atomic import write_bytes_atomic
for i in range(int(sys.argv[3])):
    write_bytes_atomic(sys.argv[1], (sys.argv[2] + ':' + str(i)).encode() * 50)
"""


def test_concurrent_writers_from_processes_to_one_path_all_succeed(tmp_path) -> None:
    target = tmp_path / "state.npz"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(target), str(k), "60"], env=env, stderr=subprocess.PIPE)
        for k in range(3)
    ]
    errs = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]


def test_saving_one_name_never_touches_another_targets_temporaries(tmp_path) -> None:
    """``snap`` and ``snap.9.npz`` share a prefix; cleaning up after one must not hit the other."""
    other = temporary_name(tmp_path / "snap.9.npz")
    other.write_bytes(b"being written")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".snap.{dead.pid}-1-deadbeef0000.tmp"
    orphan.write_bytes(b"left by a killed writer")
    write_bytes_atomic(tmp_path / "snap", b"x")
    assert other.exists() and not orphan.exists()


def test_orphans_of_this_process_are_never_removed(tmp_path) -> None:
    """Another thread of this process may be writing it right now."""
    mine = temporary_name(tmp_path / "m.onnx")
    mine.write_bytes(b"in progress")
    remove_orphans(tmp_path / "m.onnx")
    assert mine.exists()


def test_orphans_of_a_live_process_are_kept(tmp_path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        theirs = tmp_path / f".m.onnx.{live.pid}-7-0123456789ab.tmp"
        theirs.write_bytes(b"in progress")
        remove_orphans(tmp_path / "m.onnx")
        assert theirs.exists()
    finally:
        live.kill()
        live.wait()
    remove_orphans(tmp_path / "m.onnx")
    assert not theirs.exists()


# --- multi-file artifacts ----------------------------------------------------------------------
def test_commit_files_writes_members_then_the_manifest_then_removes_stale_members(tmp_path) -> None:
    from rnnx.atomic import commit_files, member_path

    old_member = tmp_path / "m.step.onnx"
    old_member.write_bytes(b"old step")
    (tmp_path / "m.onnx").write_bytes(b"old model -> m.step.onnx")
    new = member_path(old_member, b"new step")  # the old model still reads m.step.onnx
    assert new != old_member and new.name.startswith("m.step.") and new.suffix == ".onnx"
    assert member_path(old_member, b"old step") == old_member  # same bytes: same name
    commit_files(tmp_path / "m.onnx", b"new model -> " + new.name.encode(), {new: b"new step"}, [old_member])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", new.name])
    assert new.read_bytes() == b"new step"


def test_atomic_dir_replaces_a_folder_whole_and_keeps_entries_it_does_not_write(tmp_path, umask022) -> None:
    from rnnx.atomic import atomic_dir

    model = tmp_path / "repo" / "m"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.onnx").write_bytes(b"v1 old")
    (model / "2").mkdir()
    (model / "2" / "model.onnx").write_bytes(b"version 2, not ours")
    (model / "config.pbtxt").write_text("old")
    inode = (model / "2" / "model.onnx").stat().st_ino
    with atomic_dir(model) as stage:
        (stage / "1").mkdir()
        (stage / "1" / "model.onnx").write_bytes(b"v1 new")
        (stage / "config.pbtxt").write_text("new")
        assert (model / "config.pbtxt").read_text() == "old"  # nothing visible yet
    assert (model / "config.pbtxt").read_text() == "new" and (model / "1" / "model.onnx").read_bytes() == b"v1 new"
    assert (model / "2" / "model.onnx").stat().st_ino == inode  # carried over (a hard link)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m"]
    assert _mode(model) == 0o755


def test_atomic_dir_leaves_the_old_folder_when_building_fails(tmp_path) -> None:
    from rnnx.atomic import atomic_dir

    model = tmp_path / "m"
    model.mkdir()
    (model / "config.pbtxt").write_text("old")
    with pytest.raises(RuntimeError, match="verification failed"):
        with atomic_dir(model) as stage:
            (stage / "config.pbtxt").write_text("new")
            raise RuntimeError("verification failed")
    assert (model / "config.pbtxt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_atomic_dir_refuses_a_file_in_place_of_the_folder(tmp_path) -> None:
    from rnnx.atomic import atomic_dir

    (tmp_path / "m").write_text("a file")
    with pytest.raises(WriteTargetError, match="expected a folder to replace, got a regular file"):
        with atomic_dir(tmp_path / "m"):
            pass
    assert (tmp_path / "m").read_text() == "a file"
