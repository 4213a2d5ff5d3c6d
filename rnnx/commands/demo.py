"""``rnnx demo``: train, export, check, stream and benchmark the sine LSTM in one go."""

from __future__ import annotations

import click

from rnnx.commands._common import command


@command()
@click.option("--out", default="demo", show_default=True, metavar="DIR", help="Directory for the report and files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed.")
@click.option("--quick", is_flag=True, hidden=True, help="Tiny training and benchmark (tests).")
def demo(out: str, seed: int, quick: bool) -> None:
    """Train the sine LSTM, export ONNX, check parity, stream it through
    onnxruntime step by step and in closed loop, benchmark, and write DIR/report.md.

    \b
    Example:
      rnnx demo --out demo        # then read demo/report.md
    """
    from rnnx.demo import run_demo

    result = run_demo(out, quick=quick, seed=seed, echo=click.echo)
    click.echo(f"done: {result.report}")
