"""``rnnx check``: compare an exported model with the checkpoint it came from."""

from __future__ import annotations

from typing import Any, Optional

import click

from rnnx.commands._common import EXIT_FAIL, command, echo, fail_after_report


@command(json_report=True, exit_codes={EXIT_FAIL: "parity failed"})
@click.argument("ckpt", metavar="CKPT")
@click.argument("model_path", metavar="MODEL")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default per family).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance (default per family).")
def check(ckpt: str, model_path: str, atol: Optional[float], rtol: Optional[float]) -> dict[str, Any]:
    """Check MODEL (.onnx or TorchScript .pt) against CKPT (a checkpoint or run directory).

    Random inputs from random non-zero states, several batch sizes and lengths, full
    sequence and streamed; one line per output per case. JSON: the parity report
    (ok, atol, rtol, tolerance_source, max_abs, worst, rows, notes).

    \b
    Examples:
      rnnx check runs/sine exported/model.onnx
      rnnx check runs/sine exported/model.onnx --atol 1e-4 --json parity.json
    """
    from rnnx.exporter.parity import check_parity
    from rnnx.models import load

    report = check_parity(load(ckpt), model_path, atol=atol, rtol=rtol)
    echo(report.table())
    if not report.ok:
        worst = report.worst
        fail_after_report(f"parity failed: {worst.tensor} in {worst.label()} differs by {worst.max_abs:.3g}")
    return report.to_dict()
