"""Export contract modules (torch) to ONNX and TorchScript, check parity; re-exports the ONNX tools.

Example::

    from rnnx.exporter import export_onnx, check_parity
    export_onnx(model, "model.onnx").strategy  # -> 'trace'
    check_parity(model, "model.onnx").ok  # -> True
"""

from __future__ import annotations

from rnnx.torch_support import check_torch_version

check_torch_version()  # a clear error before torch's own on an old install

from rnnx.exporter.onnx_export import Attempt, ExportResult, export_onnx
from rnnx.exporter.parity import check_parity
from rnnx.exporter.seq2seq_export import Seq2SeqExport, check_seq2seq_parity, export_seq2seq
from rnnx.exporter.torchscript_export import export_torchscript
from rnnx.exporter.triton_export import export_triton
from rnnx.onnx_tools.compare import TOLERANCES, ParityReport, ParityRow, Tolerance
from rnnx.onnx_tools.quantize import QuantizeResult, quantize
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.onnx_tools.stateful import StatefulResult, make_stateful
from rnnx.onnx_tools.triton import TritonConfig

__all__ = [
    "TOLERANCES",
    "Attempt",
    "ExportResult",
    "ParityReport",
    "ParityRow",
    "QuantizeResult",
    "StatefulResult",
    "Tolerance",
    "TritonConfig",
    "check_parity",
    "export_onnx",
    "export_torchscript",
    "export_triton",
    "make_stateful",
    "quantize",
    "read_spec",
    "Seq2SeqExport",
    "export_seq2seq",
    "check_seq2seq_parity",
]
