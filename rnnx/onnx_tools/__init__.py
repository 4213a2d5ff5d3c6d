"""Tools that work on ONNX files: they need ``onnx`` and ``onnxruntime``, never torch.

A runtime-only install (``pip install "rnnx[cpu]"``) gets all of them:

- :mod:`~rnnx.onnx_tools.describe`: what a file is and how to run it (``rnnx inspect``).
- :mod:`~rnnx.onnx_tools.stateful`: graft explicit state onto a third-party RNN export.
- :mod:`~rnnx.onnx_tools.step_graph`: the single-step graph (Scans inlined at T=1).
- :mod:`~rnnx.onnx_tools.quantize`: int8 / fp16 copies of an rnnx file.
- :mod:`~rnnx.onnx_tools.ort_format`: the onnxruntime ``.ort`` format.
- :mod:`~rnnx.onnx_tools.triton`: Triton model repositories.
- :mod:`~rnnx.onnx_tools.compare`: the tolerance table and parity reports.
- :mod:`~rnnx.onnx_tools.spec_io`: read the ``rnnx.spec`` contract back from a file.

Layering: :mod:`rnnx.spec` / :mod:`rnnx.errors` below, :mod:`rnnx.runtime` beside-below
(the tools run graphs through it), :mod:`rnnx.exporter` (torch) above.
"""

from rnnx.onnx_tools.compare import TOLERANCES, ParityReport, ParityRow, Tolerance
from rnnx.onnx_tools.quantize import QuantizeResult, quantize
from rnnx.onnx_tools.spec_io import read_spec
from rnnx.onnx_tools.stateful import StatefulResult, make_stateful
from rnnx.onnx_tools.triton import TritonConfig, TritonRepository, export_triton

__all__ = [
    "TOLERANCES",
    "ParityReport",
    "ParityRow",
    "QuantizeResult",
    "StatefulResult",
    "Tolerance",
    "TritonConfig",
    "TritonRepository",
    "export_triton",
    "make_stateful",
    "quantize",
    "read_spec",
]
