"""``rnnx check``: compare an exported model with the checkpoint it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from rnnx.commands._common import EXIT_FAIL, fail, user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("ckpt", metavar="CKPT")
@click.argument("model_path", metavar="MODEL")
@click.option("--atol", type=click.FloatRange(min=0), help="Absolute tolerance (default per family).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Relative tolerance (default per family).")
@click.option("--json", "json_path", metavar="FILE", help="Also write the full report as JSON.")
@user_errors
def check(ckpt: str, model_path: str, atol: Optional[float], rtol: Optional[float],
          json_path: Optional[str]) -> None:
    """Check MODEL (.onnx or TorchScript .pt) against CKPT; exit 0 pass, 1 fail, 2 bad input.

    \b
    Example:
      rnnx check runs/sine exported/model.onnx --json parity.json
    """
    from rnnx.exporter.parity import check_parity
    from rnnx.models import load

    report = check_parity(load(ckpt), model_path, atol=atol, rtol=rtol)
    click.echo(report.table())
    if json_path:
        Path(json_path).write_text(json.dumps(report.to_dict(), indent=2))
    if not report.ok:
        worst = report.worst
        fail(f"parity failed: {worst.tensor} in {worst.label()} differs by {worst.max_abs:.3g}",
             EXIT_FAIL)
