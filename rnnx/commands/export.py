"""``rnnx export``: checkpoint -> model.onnx and/or model.pt, each checked for parity."""

from __future__ import annotations

from typing import Optional

import click

from rnnx.commands._common import EXIT_FAIL, fail, user_errors

FORMAT_CHOICES = {"onnx": ("onnx",), "torchscript": ("torchscript",), "all": ("onnx", "torchscript")}


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MiB"


def _summary(files: list) -> str:
    rows = [("file", "strategy", "size", "parity worst |err|", "result")]
    for f in files:
        rep = f.report
        rows.append((str(f.result.path), f.result.strategy, _size(f.size),
                     "-" if rep is None else f"{rep.max_abs:.3g}",
                     "unchecked" if rep is None else ("pass" if rep.ok else "FAIL")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("ckpt", metavar="CKPT")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder for model.onnx / model.pt.")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_CHOICES)), default="all",
              show_default=True, help="Which files to write.")
@click.option("--opset", type=click.IntRange(9, 21), default=17, show_default=True, help="ONNX opset.")
@click.option("--no-check", is_flag=True, help="Skip the parity check.")
@click.option("--atol", type=click.FloatRange(min=0), help="Parity absolute tolerance (default per family).")
@click.option("--rtol", type=click.FloatRange(min=0), help="Parity relative tolerance (default per family).")
@user_errors
def export(ckpt: str, out_dir: str, fmt: str, opset: int, no_check: bool,
           atol: Optional[float], rtol: Optional[float]) -> None:
    """Export CKPT (a checkpoint file or run directory) to DIR, then check parity.

    \b
    Examples:
      rnnx export runs/sine --out exported
      rnnx export runs/sine/model.safetensors --out exported --format onnx --atol 1e-4
    """
    from rnnx.exporter.bundle import export_files
    from rnnx.models import load

    files = export_files(load(ckpt), out_dir, formats=FORMAT_CHOICES[fmt], opset=opset,
                         check=not no_check, atol=atol, rtol=rtol)
    click.echo(_summary(files))
    failed = [f for f in files if f.report is not None and not f.report.ok]
    for f in failed:
        click.echo(f"\n{f.result.path}:\n{f.report.table()}")
    if failed:
        fail(f"parity check failed for {', '.join(str(f.result.path) for f in failed)}", EXIT_FAIL)
