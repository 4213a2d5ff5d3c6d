"""``rnnx quantize``: a float32 rnnx ONNX file -> an int8 or fp16 copy."""

from __future__ import annotations

from typing import Any

import click

from rnnx.commands._common import command, echo
from rnnx.spec import PRECISIONS


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def summary(result: Any) -> str:
    """A few lines: what was written, its size against the source, what was quantized."""
    ops = ", ".join(f"{op} x{n}" for op, n in result.quantized.items()) or "nothing"
    lines = [
        f"wrote {result.path} ({result.precision}): {_size(result.bytes)}, "
        f"{result.size_ratio:.2f}x of {_size(result.source_bytes)}",
        f"converted:   {ops}",
    ]
    if result.kept_float:
        lines.append("fp32 math:   " + ", ".join(f"{op} x{n}" for op, n in result.kept_float.items()))
    if result.step_graph_path is not None:
        lines.append(f"step graph:  {result.step_graph_path} (converted too; single steps run on it)")
    lines += [f"note:        {n}" for n in result.notes]
    return "\n".join(lines)


@command(json_report=True)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--precision",
    type=click.Choice([p for p in PRECISIONS if p != "fp32"]),
    required=True,
    help="int8: dynamic quantization of LSTM ops and MatMuls (also inside Scan bodies); "
    "GRU/RNN/Conv compute in float32 from int8-stored weights. fp16: half weights and "
    "compute, float32 I/O.",
)
@click.option("--out", "out_path", required=True, metavar="OUT.onnx", help="The file to write.")
def quantize(model_path: str, precision: str, out_path: str) -> dict[str, Any]:
    """Write an int8 or fp16 copy of MODEL (a float32 .onnx exported by rnnx).

    The copy keeps the state contract with its precision recorded; `rnnx check` judges it
    against the checkpoint with that precision's tolerance, and StreamingSession sets the
    session options it needs. int8 is dynamic quantization only: onnxruntime's static
    (calibrated) quantizer covers neither LSTM/GRU/RNN ops nor Scan bodies, so a
    calibration recording would only reach the head (see the README's Precision section).
    A source with a step graph (a Scan model's model.step.onnx) gets its own converted
    one beside OUT (OUT's stem + .step.onnx), checked against OUT at one step.
    JSON: path, precision, source_bytes, bytes, size_ratio, quantized, kept_float,
    weights_int8, notes, step_graph (its path or null).

    \b
    Examples:
      rnnx quantize exported/model.onnx --precision int8 --out exported/model.int8.onnx
      rnnx quantize exported/model.onnx --precision fp16 --out exported/model.fp16.onnx
      rnnx check runs/sine exported/model.int8.onnx
      rnnx quantize exported/model.onnx --precision int8 --out q.onnx --json -
    """
    from rnnx.onnx_tools.quantize import quantize as run_quantize

    result = run_quantize(model_path, out_path, precision=precision)
    echo(summary(result))
    return {
        "path": str(result.path),
        "precision": result.precision,
        "source_bytes": result.source_bytes,
        "bytes": result.bytes,
        "size_ratio": round(result.size_ratio, 4),
        "quantized": result.quantized,
        "kept_float": result.kept_float,
        "weights_int8": result.weights_int8,
        "notes": list(result.notes),
        "step_graph": None if result.step_graph_path is None else str(result.step_graph_path),
    }
