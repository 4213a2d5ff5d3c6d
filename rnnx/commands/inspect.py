"""``rnnx inspect``: show an exported model's inputs, outputs and state contract."""

from __future__ import annotations

import json
from typing import Any

import click

from rnnx.commands._common import command, echo


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _lines(info: dict[str, Any]) -> list[str]:
    size = info["size_bytes"]
    lines = [f"file:        {info['path']} ({info['format']}, {size / 1024:.1f} KiB)",
             f"kind:        {info['kind']}   rnnx {info['rnnx_version'] or '?'}",
             f"exporter:    {info['exporter'] or '?'}   opset: {info['opset'] or '-'}",
             f"streamable:  {'yes' if info['streamable'] else 'no (bidirectional: whole sequences only)'}",
             "inputs:"]
    lines += [f"  {v['name']:<12} {_shape(v['shape']):<24} {v['dtype']}" for v in info["inputs"]]
    lines.append("outputs:")
    lines += [f"  {v['name']:<12} {_shape(v['shape']):<24} {v['dtype']}" for v in info["outputs"]]
    lines.append("state:")
    lines += [f"  {s['name']:<6} {s['input']} -> {s['output']}  {_shape(s['shape'])} {s['dtype']}"
              for s in info["state"]]
    if info["config"]:
        lines.append("config:      " + json.dumps(info["config"], sort_keys=True))
    return lines


@command(json_report=True)
@click.argument("model_path", metavar="MODEL")
def inspect(model_path: str) -> dict[str, Any]:
    """Show MODEL's (.onnx or TorchScript .pt) inputs, outputs and state contract.

    JSON: path, format, size_bytes, kind, rnnx_version, exporter, opset, streamable,
    inputs, outputs, state, config.

    \b
    Examples:
      rnnx inspect exported/model.onnx
      rnnx inspect exported/model.onnx --json -      # JSON only, on stdout
    """
    from rnnx.exporter.describe import describe

    info = describe(model_path)
    echo("\n".join(_lines(info)))
    return info
