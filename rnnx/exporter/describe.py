"""What an exported file takes, returns and carries (``rnnx inspect``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rnnx.exporter.spec_io import file_format, load_onnx, read_spec

_ONNX_TYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool"}


def _onnx_io(values: Any) -> list[dict[str, Any]]:
    out = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else (d.dim_value if d.HasField("dim_value")
                else "?") for d in t.shape.dim]
        out.append({"name": v.name, "shape": dims, "dtype": _ONNX_TYPES.get(t.elem_type, str(t.elem_type))})
    return out


def _spec_io(spec: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ins = [{"name": spec.input.name, "shape": list(spec.input.shape), "dtype": spec.input.dtype}]
    outs = [{"name": spec.output.name, "shape": list(spec.output.shape), "dtype": spec.output.dtype}]
    for s in spec.state:
        ins.append({"name": s.input, "shape": list(s.shape), "dtype": s.dtype})
        outs.append({"name": s.output, "shape": list(s.shape), "dtype": s.dtype})
    return ins, outs


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-serialisable description of an exported ``.onnx`` or TorchScript file.

    Args:
        path: the exported file.

    Returns:
        format, file size, inputs/outputs (name, shape, dtype; from the graph for ONNX),
        state pairs, streamable, opset, exporter strategy, kind, config, rnnx version.

    Raises:
        ModelFileError: missing, corrupt, or not exported by rnnx.
    """
    fmt = file_format(path)
    spec = read_spec(path)
    if fmt == "onnx":
        graph = load_onnx(path).graph
        inputs, outputs = _onnx_io(graph.input), _onnx_io(graph.output)
    else:
        inputs, outputs = _spec_io(spec)
    return {
        "path": os.fspath(path), "format": fmt, "size_bytes": Path(path).stat().st_size,
        "inputs": inputs, "outputs": outputs,
        "state": [{"name": s.name, "input": s.input, "output": s.output, "shape": list(s.shape),
                   "dtype": s.dtype} for s in spec.state],
        "streamable": spec.streamable, "opset": spec.opset, "exporter": spec.exporter,
        "kind": spec.kind, "config": spec.config, "rnnx_version": spec.rnnx_version,
    }
