"""``rnnx stateful``: expose the state an ONNX file's LSTM/GRU/RNN nodes keep inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rnnx.commands._common import EXIT_FAIL, command, echo


def _shape(shape: Any) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


@command(
    json_report=True, exit_codes={EXIT_FAIL: "the new file, streamed, differs from the original (nothing written)"}
)
@click.argument("src", metavar="IN.onnx", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "dst",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the streamable file goes (written only once it passed the check).",
)
@click.option(
    "--batch-axis", type=click.IntRange(min=0), help="Batch axis of the data input, where the graph does not tell."
)
@click.option(
    "--time-axis", type=click.IntRange(min=0), help="Time axis of the data input, where the graph does not tell."
)
@click.option(
    "--keep-layout",
    is_flag=True,
    help="Keep a time-major file time-major (default: (batch, time, ...) like every rnnx file).",
)
@click.option(
    "--atol", type=click.FloatRange(min=0), default=1e-5, show_default=True, help="Absolute tolerance of the check."
)
@click.option(
    "--rtol", type=click.FloatRange(min=0), default=1e-4, show_default=True, help="Relative tolerance of the check."
)
def stateful(
    src: Path, dst: Path, batch_axis: int | None, time_axis: int | None, keep_layout: bool, atol: float, rtol: float
) -> dict[str, Any]:
    """Make IN.onnx, whose LSTM/GRU/RNN nodes keep their state inside, streamable.

    For files from plain torch.onnx.export of a model called without h0: each zero
    initial state becomes a graph input and each final state a graph output (states
    that already are graph inputs/outputs are paired), batch and time become dynamic,
    a time-major file takes and returns (batch, time, ...) (--keep-layout: as it was),
    and rnnx.spec is written, so `rnnx run`, StreamingSession and StreamPool use the
    file as it is. The result is checked: streamed step by step it must equal the
    original run on the whole sequence. Bidirectional nodes, states computed inside the
    graph and unrolled time loops are refused with the reason.
    JSON: path, spec, notes, max_abs_err, checked.

    \b
    Examples:
      rnnx stateful lstm.onnx --out lstm_stream.onnx
      rnnx run lstm_stream.onnx signal.npy --out y.npy
      rnnx stateful odd.onnx --out s.onnx --batch-axis 0 --time-axis 2 --json -
    """
    from rnnx.onnx_tools.stateful import make_stateful

    result = make_stateful(
        src, dst, batch_axis=batch_axis, time_axis=time_axis, batch_first=not keep_layout, atol=atol, rtol=rtol
    )
    spec = result.spec
    lines = [
        f"wrote {result.path}",
        f"input:   {spec.input.name} {_shape(spec.input.shape)} {spec.input.dtype}",
        f"output:  {spec.output.name} {_shape(spec.output.shape)} {spec.output.dtype}",
        "state:",
    ]
    lines += [f"  {s.name:<6} {s.input} -> {s.output}  {_shape(s.shape)} {s.dtype}" for s in spec.state]
    lines += ["changes:"] + [f"  {n}" for n in result.notes]
    lines += ["check (streamed vs the original on whole sequences):"] + [f"  {c}" for c in result.checked]
    echo("\n".join(lines))
    return result.to_dict()
