"""A Triton repository straight from a contract module: export to ONNX, then the ONNX tool."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from torch import nn

from rnnx.exporter.onnx_export import export_onnx
from rnnx.onnx_tools.triton import ONNX_FILE, TritonConfig, TritonRepository
from rnnx.onnx_tools.triton import export_triton as export_triton_file


def export_triton(
    source: nn.Module | str | os.PathLike,
    repo: str | os.PathLike,
    config: TritonConfig | None = None,
    *,
    opset: int = 17,
    verify: bool = True,
    backend: str | None = None,
) -> TritonRepository:
    """:func:`rnnx.onnx_tools.triton.export_triton` that also takes a contract module.

    A module is exported first with :func:`rnnx.exporter.export_onnx` (parity-probed as
    usual; with a step graph where the flavour serves one, see
    :attr:`~rnnx.onnx_tools.triton.TritonConfig.serves_step_graph`); a path goes straight to the ONNX tool.

    Args:
        source: an ``.onnx`` file exported by rnnx, or a contract module.
        repo: the repository folder; ``repo/<config.name>/`` is (re)written.
        config: serving options; defaults when None.
        opset: ONNX opset when ``source`` is a module.
        verify: run the Triton-style sequence check before writing anything.
        backend: "onnxruntime" or "python" (overrides ``config.backend``).
    """
    if isinstance(source, (str, os.PathLike)):
        return export_triton_file(source, repo, config, verify=verify, backend=backend)
    flavour = config or TritonConfig()
    if backend:
        flavour = dataclasses.replace(flavour, backend=backend)
    with tempfile.TemporaryDirectory() as tmp:
        result = export_onnx(source, Path(tmp) / ONNX_FILE, opset=opset, step_graph=flavour.serves_step_graph)
        return export_triton_file(result.path, repo, config, verify=verify, backend=backend)


__all__ = ["export_triton"]
