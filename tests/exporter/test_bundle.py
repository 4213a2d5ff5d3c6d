"""bundle.export_files: several formats into one folder, each checked."""

from __future__ import annotations

import pytest

from rnnx.errors import ConfigError
from rnnx.exporter.bundle import export_files
from tests.zoo import make_model


def test_both_formats_written_and_checked(tmp_path) -> None:
    files = export_files(make_model("rnn-tanh"), tmp_path, formats=("onnx", "torchscript"))
    assert [(f.format, f.result.path.name) for f in files] == [("onnx", "model.onnx"), ("torchscript", "model.pt")]
    assert all(f.report.ok and f.size > 0 for f in files)


def test_default_is_onnx_only(tmp_path) -> None:
    """TorchScript (deprecated by PyTorch) is written only when asked for."""
    files = export_files(make_model("rnn-tanh"), tmp_path)
    assert [(f.format, f.result.path.name) for f in files] == [("onnx", "model.onnx")]
    assert files[0].report.ok and not (tmp_path / "model.pt").exists()


def test_unknown_format_lists_valid_ones(tmp_path) -> None:
    with pytest.raises(
        ConfigError, match=r"format: expected one or more of onnx, torchscript, triton, ort, pt2, pte, got \['tflite'\]"
    ):
        export_files(make_model("rnn-tanh"), tmp_path, formats=("tflite",))


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_triton_format_honours_the_precision(tmp_path, precision):
    """--format triton ignored --precision: the repository always held the float32 graph."""
    from rnnx.onnx_tools.spec_io import read_spec
    from tests.zoo import TINY

    (made,) = export_files(TINY["gru-1l"](), tmp_path, formats=["triton"], precision=precision)
    served = tmp_path / "rnnx_model" / "1" / "model.onnx"
    assert made.result.path == served and read_spec(served).precision == precision
    assert made.result.spec.precision == precision and made.quantized is not None
    assert made.report is not None and made.report.ok
