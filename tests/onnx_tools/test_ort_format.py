"""rnnx.onnx_tools.ort_format: the onnxruntime mobile format keeps the contract and streams."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rnnx.errors import ModelFileError
from rnnx.exporter import check_parity, read_spec
from rnnx.exporter.bundle import export_files
from rnnx.onnx_tools.describe import describe
from rnnx.onnx_tools.ort_format import to_ort
from rnnx.onnx_tools.spec_io import file_format
from rnnx.runtime import StreamingSession


@pytest.mark.parametrize("name", ["lstm-2l", "convlstm-k3"])
def test_ort_file_keeps_the_spec_and_streams_like_the_onnx(exported, tmp_path, name: str) -> None:
    model, result = exported(name, "onnx")
    path = to_ort(result.path, tmp_path / "model.ort")
    assert file_format(path) == "ort"
    assert read_spec(path) == dataclasses.replace(read_spec(result.path), step_graph=None)  # .onnx's, not converted
    info = describe(path)
    assert info["format"] == "ort" and [v["name"] for v in info["inputs"]] == [
        result.spec.input.name,
        *(s.input for s in result.spec.state),
    ]
    assert check_parity(model, path, batch_sizes=(2,), steps=(1, 7)).ok
    x = np.random.default_rng(0).standard_normal((1, 4, *result.spec.input.feature_shape))
    x = x.astype(np.float32)
    a, b = StreamingSession(result.path), StreamingSession(path)
    np.testing.assert_allclose(b.step(x[:, 0]), a.step(x[:, 0]), atol=1e-6)
    np.testing.assert_allclose(b.feed(x[:, 1:]), a.feed(x[:, 1:]), atol=1e-6)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_export_files_writes_reduced_precision_ort(tmp_path, precision: str) -> None:
    pytest.importorskip("onnxconverter_common")
    from tests.zoo import TINY

    files = export_files(TINY["lstm-2l"](), tmp_path, formats=("ort",), precision=precision)
    (f,) = files
    assert f.result.path == tmp_path / f"model.{precision}.ort" and f.report.ok, f.report.table()
    assert read_spec(f.result.path).precision == precision and f.quantized.precision == precision
    assert StreamingSession(f.result.path).step(np.zeros((1, 5), np.float32)).shape == (1, 3)


def test_truncated_ort_file_is_a_model_file_error(exported, tmp_path) -> None:
    _, result = exported("lstm-2l", "onnx")
    data = to_ort(result.path, tmp_path / "model.ort").read_bytes()
    bad = tmp_path / "bad.ort"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=r"bad.ort: not a loadable .ort model"):
        read_spec(bad)
