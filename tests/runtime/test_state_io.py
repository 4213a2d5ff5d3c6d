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
    np.savez(path, **{MARKER: np.array(json.dumps({"format": 1, "names": ["h"]}))},
             h=np.array([{"a": 1}], dtype=object))
    with pytest.raises(StateError, match="'h': expected a numeric array, got dtype object"):
        load_state_file(path)


@pytest.mark.parametrize("write, match", [
    (lambda p: p.write_bytes(b"not a zip"), "unreadable data"),
    (lambda p: np.savez(p, h=np.zeros(2)), "expected an rnnx state file"),
    (lambda p: np.savez(p, **{MARKER: np.array("{bad json")}), "corrupt marker"),
    (lambda p: np.savez(p, **{MARKER: np.array('{"format": 9, "names": []}')}), "expected format 1"),
    (lambda p: np.savez(p, **{MARKER: np.array('{"format": 1, "names": ["c"]}')}, h=np.zeros(1)),
     r"expected arrays \['c'\], got \['h'\]"),
], ids=["not-zip", "no-marker", "bad-marker", "future-format", "names-mismatch"])
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
