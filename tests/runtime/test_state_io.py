"""State files: atomic writes, no pickle, contents checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnx.errors import StateError
from rnnx.runtime.state_io import MARKER, load_state_file, save_state_file


def test_round_trip_is_exact(tmp_path):
    state = {"h": np.random.default_rng(0).standard_normal((2, 1, 4)).astype(np.float32)}
    save_state_file(tmp_path / "s.npz", state)
    loaded = load_state_file(tmp_path / "s.npz")
    assert loaded.keys() == state.keys()
    np.testing.assert_array_equal(loaded["h"], state["h"])


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "s.npz"
    save_state_file(target, {"h": np.ones(3, np.float32)})
    with pytest.raises(StateError, match=r"state\['h'\]: expected a numeric array, got dtype object"):
        save_state_file(target, {"h": np.array([object()], dtype=object)})
    np.testing.assert_array_equal(load_state_file(target)["h"], np.ones(3, np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_pickled_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(
        path, **{MARKER: np.array(json.dumps({"format": 1, "names": ["h"]}))}, h=np.array([{"a": 1}], dtype=object)
    )
    with pytest.raises(StateError, match="'h': expected a numeric array, got dtype object"):
        load_state_file(path)


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: p.write_bytes(b"not a zip"), "unreadable data"),
        (lambda p: np.savez(p, h=np.zeros(2)), "expected an rnnx state file"),
        (lambda p: np.savez(p, **{MARKER: np.array("{bad json")}), "corrupt marker"),
        (lambda p: np.savez(p, **{MARKER: np.array('{"format": 9, "names": []}')}), "expected format 1"),
        (
            lambda p: np.savez(p, **{MARKER: np.array('{"format": 1, "names": ["c"]}')}, h=np.zeros(1)),
            r"expected arrays \['c'\], got \['h'\]",
        ),
    ],
    ids=["not-zip", "no-marker", "bad-marker", "future-format", "names-mismatch"],
)
def test_bad_state_files(tmp_path, write, match):
    path = tmp_path / "s.npz"
    write(path)
    with pytest.raises(StateError, match=match):
        load_state_file(path)


def test_missing_state_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        load_state_file(tmp_path / "none.npz")


def test_truncated_zip_is_a_state_error(tmp_path):
    path = tmp_path / "s.npz"
    save_state_file(path, {"h": np.ones(1000, np.float32)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError, match="unreadable data"):
        load_state_file(path)


# -- bounded before decompression, corrupt zips, temporaries, awkward names ------------------

H = {"h": ((2, 1, 4), np.dtype(np.float32))}  # the state contract these files are read against


def _marker(names):
    return np.array(json.dumps({"format": 1, "names": names}))


def test_member_that_inflates_far_beyond_the_contract_is_refused_unread(tmp_path):
    """A small deflated file whose array inflates to 64 MiB: refused from the zip directory alone."""
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, **{MARKER: _marker(["h"])}, h=np.zeros(16 << 20, np.float32))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(StateError, match=r"'h': expected at most \d+ bytes, the file declares 67108992"):
        load_state_file(path, H)


def test_npy_header_is_checked_against_the_contract_before_the_data(tmp_path):
    path = tmp_path / "s.npz"
    save_state_file(path, {"h": np.zeros((1, 1, 4), np.float32)})
    with pytest.raises(StateError, match=r"'h': expected shape \(2, 1, 4\) dtype float32, got \(1, 1, 4\) float32"):
        load_state_file(path, H)
    save_state_file(path, {"x": np.zeros((2, 1, 4), np.float32)})
    with pytest.raises(StateError, match=r"'x': not a state of this model; expected \['h'\]"):
        load_state_file(path, H)


def test_header_that_lies_about_its_size_is_refused(tmp_path):
    """The .npy header claims a huge shape while the member is small: refused before any allocation."""
    import zipfile

    path = tmp_path / "lie.npz"
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }"
    header += b" " * (117 - len(header)) + b"\n"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("h.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 32)
        zf.writestr(f"{MARKER}.npy", b"")
    with pytest.raises(StateError, match=r"'h': the header declares 4000000000000 bytes of data, the member holds 32"):
        load_state_file(path)


@pytest.mark.parametrize("damage", ["deflate-stream", "compression-method"])
def test_corrupt_zip_is_a_state_error_never_zlib_or_not_implemented(tmp_path, damage):
    import zipfile

    path = tmp_path / "s.npz"
    np.savez_compressed(path, **{MARKER: _marker(["h"])}, h=np.arange(4000, dtype=np.float32))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("h.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    if damage == "deflate-stream":
        data[start : start + 40] = b"\xff" * 40  # an invalid deflate block: zlib.error inside zipfile
    else:
        data[info.header_offset + 8 : info.header_offset + 10] = (99).to_bytes(2, "little")  # method 99
        central = [i for i in range(len(data)) if data[i : i + 4] == b"PK\x01\x02"]
        for c in central:
            name_len = int.from_bytes(data[c + 28 : c + 30], "little")
            if bytes(data[c + 46 : c + 46 + name_len]) == b"h.npy":
                data[c + 10 : c + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="unreadable data"):
        load_state_file(path)


def test_orphaned_temporary_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    """Mutation caught: ``atomic_write`` (rnnx/atomic.py) without its ``remove_orphans(target)`` call."""
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()  # a process id that has exited
    orphan = tmp_path / f".s.npz.{dead}-1-0123456789ab.tmp"
    orphan.write_bytes(b"half a zip")
    other = tmp_path / f".other.npz.{dead}-1-0123456789ab.tmp"  # another file's temporary is left alone
    other.write_bytes(b"")
    save_state_file(tmp_path / "s.npz", {"h": np.ones(3, np.float32)})
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "s.npz"]


def test_live_writers_temporary_is_kept(tmp_path):
    import os

    mine = tmp_path / f".s.npz.{os.getppid()}-1-0123456789ab.tmp"  # the parent process is alive
    mine.write_bytes(b"")
    save_state_file(tmp_path / "s.npz", {"h": np.ones(3, np.float32)})
    assert mine.exists()


def test_state_names_that_np_savez_reserves_round_trip(tmp_path):
    state = {
        "file": np.arange(3, dtype=np.float32),
        "allow_pickle": np.ones((1, 2), np.int64),
        "args": np.zeros(1, np.float64),
        "kwds": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    path = save_state_file(tmp_path / "s.npz", state)
    loaded = load_state_file(path)
    assert sorted(loaded) == sorted(state)
    for k, v in state.items():
        np.testing.assert_array_equal(loaded[k], v)
        assert loaded[k].dtype == v.dtype
    with np.load(path, allow_pickle=False) as plain:  # still a plain .npz for numpy
        np.testing.assert_array_equal(plain["file"], state["file"])


@pytest.mark.parametrize(
    "name",
    ["__rnnx_state__", "nul\0", "../../x", "/abs", ".", "..", "x\n"],
    ids=["marker", "nul", "climb", "absolute", "dot", "dotdot", "newline"],
)
def test_a_state_name_that_could_not_load_back_is_refused_at_save(tmp_path, name):
    """These used to save (as archive entry names, ``../../x`` included) and never load."""
    with pytest.raises(StateError, match=r"state\["):
        save_state_file(tmp_path / "s.npz", {name: np.ones(3, np.float32)})
    assert list(tmp_path.iterdir()) == []


def test_a_state_file_with_an_entry_that_climbs_out_is_refused_at_load(tmp_path):
    import zipfile

    path = save_state_file(tmp_path / "s.npz", {"h": np.ones(3, np.float32)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("../../x.npy", b"")
    with pytest.raises(StateError, match=r"member '\.\./\.\./x\.npy': expected a plain name"):
        load_state_file(path)


def test_eight_threads_saving_state_to_one_path_all_succeed(tmp_path):
    """2 threads x 100 saves lost 48 (the cleanup of a killed writer's temporaries deleted the
    other thread's, which carried the same process id); 8 x 150 lost 1130 of 1200."""
    import threading

    errors: list[BaseException] = []
    path = tmp_path / "s.npz"

    def saver(k: int) -> None:
        state = {"h": np.full((2, 1, 8), k, np.float32)}
        for _ in range(150):
            try:
                save_state_file(path, state)
            except BaseException as e:  # noqa: BLE001 - every failure is counted
                errors.append(e)

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    h = load_state_file(path)["h"]
    assert (h == h.flat[0]).all() and [p.name for p in tmp_path.iterdir()] == ["s.npz"]  # one whole save
