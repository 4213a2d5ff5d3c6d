"""``rnnx run``: stream a recorded sequence through an exported model (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import numpy as np

from rnnx.commands._common import command, echo
from rnnx.errors import ShapeError
from rnnx.progress import Progress

PROGRESS_MIN_STEPS = 2000  # show a progress bar from this many time steps on


def read_sequence(path: Path, dtype: np.dtype) -> np.ndarray:
    """Load ``.npy`` (no pickle) or ``.csv`` (rows = time steps, optional header)."""
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix.lower() == ".csv":
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=dtype)
        except ValueError:
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=dtype, skiprows=1)
    raise click.BadParameter(f"expected a .npy or .csv file, got {path.name}", param_hint="INPUT")


def write_outputs(path: Path, y: np.ndarray) -> None:
    """Write ``.npy`` as is, or ``.csv`` with one row per time step (batch 1 only)."""
    if path.suffix.lower() == ".npy":
        np.save(path, y)
    elif path.suffix.lower() == ".csv":
        if y.shape[0] != 1:
            raise ShapeError(f"--out: CSV holds one sequence, got a batch of {y.shape[0]}; use .npy")
        np.savetxt(path, y[0].reshape(y.shape[1], -1), delimiter=",", fmt="%.8g")
    else:
        raise click.BadParameter(f"expected a .npy or .csv file, got {path.name}", param_hint="--out")


def stream(sess, x: np.ndarray, chunk: int) -> np.ndarray:
    """Feed ``x`` (B, T, F...) through ``sess`` in chunks of ``chunk`` steps."""
    steps = x.shape[1]
    outs = []
    with Progress(steps, "run", "step", enabled=steps >= PROGRESS_MIN_STEPS) as bar:
        for start in range(0, steps, chunk):
            outs.append(sess.feed(x[:, start:start + chunk]))
            bar.update(min(chunk, steps - start))
    return np.concatenate(outs, axis=1)


def _summary(y: np.ndarray) -> str:
    last = np.array2string(y[:, -1].ravel()[:8], precision=4)
    return (f"output shape {y.shape}  mean {y.mean():.6g}  min {y.min():.6g}  max {y.max():.6g}\n"
            f"last step: {last}")


@command(json_report=True)
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chunk", type=click.IntRange(min=1), default=64, show_default=True, help="Time steps per runtime call.")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write outputs (.npy or .csv).")
@click.option("--state-in", type=click.Path(exists=True, dir_okay=False), help="Start from this state file.")
@click.option("--state-out", type=click.Path(dir_okay=False), help="Save the final state here.")
def run(model: str, input_path: Path, chunk: int, provider: str, out: Optional[Path],
        state_in: Optional[str], state_out: Optional[str]) -> dict[str, Any]:
    """Stream INPUT, a recorded sequence (T, F...) or batch (B, T, F...), through MODEL.

    INPUT is .npy or .csv (one row per time step). Without --out a summary is printed.
    JSON: model, input, input_shape, output_shape, out, state_in, state_out, mean, min,
    max, last_step.

    \b
    Examples:
      rnnx run exported/model.onnx signal.npy --out y.npy --state-out state.npz
      rnnx run exported/model.onnx more.csv --state-in state.npz --out y.csv
      rnnx run exported/model.onnx signal.npy --json -
    """
    from rnnx.runtime import StreamingSession
    from rnnx.runtime.session import open_session
    from rnnx.runtime.contract import read_contract

    contract = read_contract(open_session(model, provider))
    x = read_sequence(input_path, contract.input.dtype)
    if x.ndim == len(contract.input.dims) - 1:
        x = x[None]  # (T, F...) -> (1, T, F...)
    if x.ndim != len(contract.input.dims):
        raise ShapeError(f"INPUT: expected (time, features...) or (batch, time, features...) with "
                         f"{len(contract.input.dims) - 1} or {len(contract.input.dims)} axes, got shape {x.shape}")
    sess = StreamingSession(model, providers=provider, batch_size=x.shape[0])
    if state_in:
        sess.load_state(state_in)
    y = stream(sess, x, chunk) if contract.streamable else sess.run(x)
    if state_out:
        sess.save_state(state_out)
    if out is not None:
        write_outputs(out, y)
        echo(f"wrote {out} {y.shape}")
    else:
        echo(_summary(y))
    return {"model": model, "input": str(input_path), "input_shape": list(x.shape),
            "output_shape": list(y.shape), "out": None if out is None else str(out),
            "state_in": state_in, "state_out": state_out, "mean": float(y.mean()),
            "min": float(y.min()), "max": float(y.max()), "last_step": y[:, -1].tolist()}
