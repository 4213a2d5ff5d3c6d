"""read_spec: the contract read back from .onnx and TorchScript files; clear errors otherwise."""

from __future__ import annotations

import zipfile

import onnx
import pytest
import torch

from rnnx.errors import ModelFileError, SpecError
from rnnx.exporter import read_spec


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_spec_round_trips(exported, fmt: str) -> None:
    _, result = exported("lstm-2l-proj", fmt)
    spec = read_spec(result.path)
    assert spec == result.spec
    assert [s.shape for s in spec.state] == [(2, "batch", 4), (2, "batch", 8)]
    assert spec.kind == "lstm" and spec.config["proj_size"] == 4


def test_user_module_gets_default_names_and_custom_kind(exported) -> None:
    _, result = exported("custom-peephole", "onnx")
    spec = read_spec(result.path)
    assert spec.kind == "custom" and [s.name for s in spec.state] == ["state0", "state1"]
    assert [s.input for s in spec.state] == ["state0_in", "state1_in"]
    assert spec.state[0].shape == ("batch", 8)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"model file not found: .*nope.onnx"):
        read_spec(tmp_path / "nope.onnx")


def test_directory(tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"expected a model file .* got a directory"):
        read_spec(tmp_path)


def test_empty_file(tmp_path) -> None:
    (tmp_path / "e.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"file is empty"):
        read_spec(tmp_path / "e.onnx")


def test_garbage_file(tmp_path) -> None:
    (tmp_path / "g.onnx").write_bytes(b"\xff\x00 definitely not a model" * 10)
    with pytest.raises(ModelFileError, match=r"not a valid ONNX or TorchScript model"):
        read_spec(tmp_path / "g.onnx")


def test_onnx_without_spec(exported, tmp_path) -> None:
    _, result = exported("gru-1l", "onnx")
    model = onnx.load(str(result.path))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelFileError, match=r"no 'rnnx.spec' metadata; this onnx file was not exported by rnnx"):
        read_spec(tmp_path / "bare.onnx")


def test_onnx_with_malformed_spec(exported, tmp_path) -> None:
    _, result = exported("gru-1l", "onnx")
    model = onnx.load(str(result.path))
    model.metadata_props[0].value = "{not json"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(SpecError, match=r"bad.onnx: rnnx.spec: expected JSON"):
        read_spec(tmp_path / "bad.onnx")


def test_torchscript_without_spec(tmp_path) -> None:
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "plain.pt"))
    with pytest.raises(ModelFileError, match=r"no 'rnnx.spec' metadata; this torchscript file"):
        read_spec(tmp_path / "plain.pt")


def test_zip_that_is_not_torchscript(tmp_path) -> None:
    with zipfile.ZipFile(tmp_path / "a.pt", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match=r"a zip file but not a TorchScript model"):
        read_spec(tmp_path / "a.pt")


def test_truncated_torchscript(exported, tmp_path) -> None:
    _, result = exported("gru-1l", "torchscript")
    data = result.path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"corrupt TorchScript model"):
        read_spec(tmp_path / "cut.pt")
