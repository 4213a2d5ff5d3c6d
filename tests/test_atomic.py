"""``rnnx.atomic``: a write either completes or leaves the old file untouched."""

from __future__ import annotations

import pytest

from rnnx.atomic import atomic_write, write_text_atomic


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
