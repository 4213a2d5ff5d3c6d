"""``rnnx bench``: step latency and throughput of an exported model (torch only with --torch)."""

from __future__ import annotations

from typing import Any

import click

from rnnx.commands._common import command, echo
from rnnx.commands._runtime_options import foreign_options, runtime_options
from rnnx.errors import SpecError


@command(json_report=True)
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--streams", type=click.IntRange(min=1), default=64, show_default=True, help="Streams in the pool rows.")
@click.option("--steps", type=click.IntRange(min=10), default=2000, show_default=True, help="Timed single-step calls.")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Intra-op threads.")
@click.option(
    "--torch",
    "torch_ckpt",
    metavar="CKPT",
    help="What MODEL was exported from (a checkpoint, run "
    "directory or file.py:factory): add PyTorch eager and TorchScript rows.",
)
@click.option("--weights", metavar="FILE", help="--torch file.py:factory only: its trained weights.")
@click.option(
    "--targets",
    "show_targets",
    is_flag=True,
    help="Also print rnnx's own performance targets "
    "(ratios it is developed against; they vary with machine load, so a miss is no error).",
)
@runtime_options
def bench(
    model: str,
    streams: int,
    steps: int,
    provider: str,
    threads: int,
    torch_ckpt: str | None,
    weights: str | None,
    show_targets: bool,
    state_map: tuple[str, ...],
    constant: tuple[str, ...],
    context: int,
) -> dict[str, Any]:
    """Measure MODEL: session step, chunked feed, a pool of N streams, side by side with ratios.

    Candidates are timed in alternating rounds so machine load hits all alike. --targets
    also prints rnnx's own performance targets (a ratio below one is no error, and the
    verdict varies with load); JSON always has them. JSON: model, provider, threads,
    rows (name, p50_us, p90_us, p99_us, steps_per_s, ...), checks (name, value, target, ok).
    ONNX files rnnx did not write take --state-map/--constant/--context as in `rnnx run`.

    \b
    Examples:
      rnnx bench exported/model.onnx --streams 256
      rnnx bench exported/model.onnx --torch runs/sine --json bench.json
      rnnx bench exported/model.onnx --torch my_model.py:make --weights trained.pt
      rnnx bench vad.onnx --state-map state=stateN --constant sr=16000 --context 64
    """
    from rnnx.bench import run_all, table

    if weights and not torch_ckpt:
        raise SpecError("--weights: only with --torch file.py:factory")
    torch_model = None
    if torch_ckpt:
        from rnnx.exporter.parity import check_same_model
        from rnnx.models.user import load_model  # imports torch: only with --torch
        from rnnx.onnx_tools.spec_io import read_spec

        torch_model = load_model(torch_ckpt, weights=weights)
        try:
            check_same_model(torch_model, read_spec(model))
        except SpecError as e:  # speed-ups against another model would be meaningless
            raise SpecError(f"--torch {torch_ckpt}: not the checkpoint MODEL was exported from: {e}") from e
    rows, checks = run_all(
        model,
        streams=streams,
        steps=steps,
        providers=provider,
        threads=threads,
        torch_model=torch_model,
        foreign=foreign_options(model, state_map, constant, context),
    )
    echo(table(rows, checks if show_targets else []))
    return {
        "model": model,
        "provider": provider,
        "threads": threads,
        "rows": [r.to_dict() for r in rows],
        "checks": [c.to_dict() for c in checks],
    }
