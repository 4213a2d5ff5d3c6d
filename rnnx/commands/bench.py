"""``rnnx bench``: step latency and throughput of an exported model (torch only with --torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from rnnx.commands._common import user_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--streams", type=click.IntRange(min=1), default=64, show_default=True, help="Streams in the pool rows.")
@click.option("--steps", type=click.IntRange(min=10), default=2000, show_default=True, help="Timed single-step calls.")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here.")
@click.option("--torch", "torch_ckpt", type=click.Path(exists=True), help="Checkpoint of MODEL: add PyTorch eager and TorchScript rows.")
@user_errors
def bench(model: str, streams: int, steps: int, provider: str, threads: int,
          json_path: Optional[Path], torch_ckpt: Optional[str]) -> None:
    """Measure MODEL: session step, chunked feed, a pool of N streams, side by side with ratios."""
    from rnnx.bench import run_all, table

    torch_model = None
    if torch_ckpt:
        from rnnx.models import load  # imports torch: only with --torch

        torch_model = load(torch_ckpt)
    rows, checks = run_all(model, streams=streams, steps=steps, providers=provider, threads=threads,
                           torch_model=torch_model)
    click.echo(table(rows, checks))
    if json_path is not None:
        json_path.write_text(json.dumps({"model": model, "provider": provider, "threads": threads,
                                         "rows": [r.to_dict() for r in rows],
                                         "checks": [c.to_dict() for c in checks]}, indent=2))
        click.echo(f"wrote {json_path}")
