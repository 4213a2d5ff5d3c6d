"""Export one model to several formats into a folder, each checked for parity (``rnnx export``)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import nn

from rnnx.errors import ConfigError
from rnnx.exporter.onnx_export import ExportResult, export_onnx
from rnnx.exporter.parity import ParityReport, check_parity
from rnnx.exporter.torchscript_export import export_torchscript
from rnnx.exporter.triton import TritonConfig, export_triton

# format -> file name in the folder ("triton": a model repository, <name>/1/model.onnx)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt", "triton": "model.onnx"}


@dataclass(frozen=True)
class ExportedFile:
    """One written file and its parity verdict."""

    format: str  # "onnx", "torchscript" or "triton"
    result: ExportResult  # path, spec, strategy
    report: ParityReport | None  # None when the check was skipped

    @property
    def size(self) -> int:
        return self.result.path.stat().st_size


def export_files(model: nn.Module, out_dir: str | os.PathLike, *,
                 formats: Sequence[str] = ("onnx", "torchscript"), opset: int = 17,
                 check: bool = True, atol: float | None = None,
                 rtol: float | None = None, triton: TritonConfig | None = None) -> list[ExportedFile]:
    """Write ``out_dir/model.onnx`` and/or ``out_dir/model.pt``, then check each one's parity.

    Format "triton" writes a Triton model repository into ``out_dir`` instead
    (:func:`rnnx.exporter.triton.export_triton`): the ONNX graph is parity-checked against
    the model, then served the way Triton serves it and checked again.

    Args:
        model: the eager contract module.
        out_dir: folder to write (created).
        formats: any of "onnx", "torchscript".
        opset: ONNX opset.
        check: run :func:`check_parity` on each file.
        atol: parity tolerance override.
        rtol: parity tolerance override.
        triton: options of the "triton" format (defaults when None).

    Returns:
        One :class:`ExportedFile` per format, in order.

    Raises:
        ConfigError: an unknown format.
        ExportError: a format could not be exported.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"format: expected one or more of {', '.join(FORMATS)}, got {list(formats)}")
    out = Path(out_dir)
    files = []
    for fmt in formats:
        if fmt == "triton":
            files.append(_export_triton(model, out, opset, triton, check, atol, rtol))
            continue
        path = out / FORMATS[fmt]
        result = (export_onnx(model, path, opset=opset) if fmt == "onnx"
                  else export_torchscript(model, path))
        report = check_parity(model, path, atol=atol, rtol=rtol) if check else None
        files.append(ExportedFile(fmt, result, report))
    return files


def _export_triton(model: nn.Module, out: Path, opset: int, triton: TritonConfig | None,
                   check: bool, atol: float | None, rtol: float | None) -> ExportedFile:
    """ONNX export + parity against the model, then the Triton repository from that file."""
    with tempfile.TemporaryDirectory() as tmp:
        result = export_onnx(model, Path(tmp) / FORMATS["onnx"], opset=opset)
        report = check_parity(model, result.path, atol=atol, rtol=rtol) if check else None
        repo = export_triton(result.path, out, triton)
    return ExportedFile("triton", dataclasses.replace(result, path=repo.onnx_path, spec=repo.spec),
                        report)
