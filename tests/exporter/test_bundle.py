"""bundle.export_files: several formats into one folder, each checked."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from rnnx.errors import ConfigError
from rnnx.exporter.bundle import FormatFailure, export_files
from rnnx.exporter.strategies import auto_order
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


def _onnx_exports(records: list[logging.LogRecord]) -> int:
    """How many ONNX exports ran: each one logs its first strategy's try."""
    first = f"to ONNX: trying the {auto_order()[0]} path"
    return sum(first in r.getMessage() for r in records)


def test_onnx_ort_and_triton_are_derived_from_one_onnx_export(tmp_path, caplog) -> None:
    """The Triton repository was built from a second export of the same model; now all three share one."""
    from tests.zoo import TINY

    with caplog.at_level(logging.INFO, logger="rnnx"):
        files = export_files(TINY["gru-1l"](), tmp_path, formats=("onnx", "ort", "triton"), strategy=auto_order()[0])
    assert _onnx_exports(caplog.records) == 1
    assert [f.format for f in files] == ["onnx", "ort", "triton"] and all(f.report.ok for f in files)
    onnx, _, triton = files
    assert triton.result.attempts == onnx.result.attempts  # the same export, its timings included
    assert triton.report is onnx.report  # judged by the graph it was built from: model.onnx's bytes


def test_python_triton_keeps_its_step_graph_when_model_onnx_has_none(tmp_path, caplog) -> None:
    """--no-step-graph with the python flavour: one export with a step graph, model.onnx without it."""
    from rnnx.onnx_tools.spec_io import read_spec
    from rnnx.onnx_tools.triton import TritonConfig

    config = TritonConfig(name="conv", backend="python")
    with caplog.at_level(logging.INFO, logger="rnnx"):
        files = export_files(
            make_model("convlstm-k3"), tmp_path, formats=("onnx", "triton"), triton=config, step_graph=False
        )
    assert _onnx_exports(caplog.records) == 1
    onnx, triton = files
    assert read_spec(tmp_path / "model.onnx").step_graph is None and onnx.result.step_graph_path is None
    assert not (tmp_path / "model.step.onnx").exists() and onnx.report.ok
    served = read_spec(tmp_path / "conv" / "1" / "model.onnx").step_graph
    assert served is not None and triton.result.step_graph_path == tmp_path / "conv" / "1" / served.file
    assert triton.result.step_graph_path.is_file() and triton.report.ok


class OnnxOnlyBug(nn.Module):
    """Follows the contract; what the ONNX exporter records differs from eager (TorchScript's trace does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros(1, batch_size, 4)]

    def example_input(self, batch_size: int = 2, steps: int = 5) -> torch.Tensor:
        return torch.randn(batch_size, steps, 3)

    def forward(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y, h = self.gru(x, state[0])
        if torch.onnx.is_in_onnx_export():
            h = h * 0.5  # the parity probe refuses every ONNX candidate
        return y, [h]


def test_a_failed_onnx_export_fails_each_onnx_based_format_once(tmp_path, caplog) -> None:
    """onnx and ort each exported the graph (the failing export ran twice); TorchScript is still written."""
    failures: list[FormatFailure] = []
    with caplog.at_level(logging.INFO, logger="rnnx"):
        files = export_files(
            OnnxOnlyBug(), tmp_path, formats=("onnx", "ort", "torchscript"), strategy=auto_order()[0], failures=failures
        )
    assert _onnx_exports(caplog.records) == 1
    assert [(f.format, f.path.name) for f in failures] == [("onnx", "model.onnx"), ("ort", "model.ort")]
    assert failures[0].reason == failures[1].reason and "parity probe failed" in failures[0].reason
    assert [f.format for f in files] == ["torchscript"] and files[0].report.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_reexport_never_changes_the_step_graph_the_old_model_onnx_reads(tmp_path) -> None:
    """The step graph was copied over the old one's name before model.onnx landed: a kill between
    the two left the old model.onnx naming a step graph whose SHA-256 no longer matched."""
    import hashlib

    from rnnx.onnx_tools.spec_io import read_spec
    from rnnx.runtime import StreamingSession

    (first,) = export_files(make_model("convlstm-k3"), tmp_path, check=False)
    old_step = first.result.step_graph_path.read_bytes()
    other = make_model("convlstm-k3")
    with torch.no_grad():
        next(other.parameters()).mul_(0.5)  # other weights: another step graph
    (second,) = export_files(other, tmp_path)
    new_step = second.result.step_graph_path.read_bytes()
    assert new_step != old_step and second.report.ok
    # beside the old one (which the old model.onnx named), never over it; the old one removed last
    assert second.result.step_graph_path.name == f"model.step.{hashlib.sha256(new_step).hexdigest()[:12]}.onnx"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", second.result.step_graph_path.name])
    assert read_spec(tmp_path / "model.onnx").step_graph.file == second.result.step_graph_path.name
    with StreamingSession(tmp_path / "model.onnx") as sess:
        assert sess.step_graph == second.result.step_graph_path
