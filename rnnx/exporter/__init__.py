"""Export contract modules to ONNX and TorchScript, read their contract back, check parity.

Example::

    from rnnx.exporter import export_onnx, check_parity
    export_onnx(model, "model.onnx").strategy  # -> 'trace'
    check_parity(model, "model.onnx").ok  # -> True
"""

from __future__ import annotations

from rnnx.torch_support import check_torch_version

check_torch_version()  # a clear error before torch's own on an old install

from rnnx.exporter.onnx_export import Attempt, ExportResult, export_onnx
from rnnx.exporter.parity import TOLERANCES, ParityReport, ParityRow, Tolerance, check_parity
from rnnx.exporter.quantize import QuantizeResult, quantize
from rnnx.exporter.seq2seq_export import Seq2SeqExport, check_seq2seq_parity, export_seq2seq
from rnnx.exporter.spec_io import read_spec
from rnnx.exporter.stateful import StatefulResult, make_stateful
from rnnx.exporter.torchscript_export import export_torchscript
from rnnx.exporter.triton import TritonConfig, export_triton

__all__ = [
    "TOLERANCES", "Attempt", "ExportResult", "ParityReport", "ParityRow", "QuantizeResult",
    "StatefulResult", "Tolerance", "TritonConfig", "check_parity", "export_onnx", "export_torchscript",
    "export_triton", "make_stateful", "quantize", "read_spec",
    "Seq2SeqExport", "export_seq2seq", "check_seq2seq_parity",
]
