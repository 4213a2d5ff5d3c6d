"""``rnnx run``: stream a recorded sequence through an exported model (no torch needed)."""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnx.atomic import atomic_write, write_text_atomic
from rnnx.commands._common import command, echo
from rnnx.commands._data import decode as decode_tokens
from rnnx.commands._data import encode_text, output_columns, read_features
from rnnx.commands._runtime_options import foreign_options, runtime_options
from rnnx.errors import InputFileError, InputValueError, NotStreamableError, ShapeError
from rnnx.progress import Progress
from rnnx.runtime.validate import check_token_ids
from rnnx.spec import DataSpec

PROGRESS_MIN_STEPS = 2000  # show a progress bar from this many time steps on
MAX_HEADER_LINE = 1 << 16  # characters of a CSV's first line looked at to tell a header


def read_sequence(path: Path, dtype: np.dtype) -> np.ndarray:
    """Load ``.npy`` (memory-mapped, no pickle) or ``.csv`` (rows = time steps, optional header).

    A ``.npy`` file is mapped, not read: a long recording is paged in as it streams, and a
    header that promises more data than the file holds is refused before anything is read.

    Raises:
        InputFileError: unreadable, truncated or non-numeric data.
    """
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path, dtype)
    raise click.BadParameter(
        f"expected a .npy or .csv file (or .txt for a token model with a vocabulary), got {path.name}",
        param_hint="INPUT",
    )


def _read_npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, EOFError) as e:  # bad header, truncated data, object arrays
        raise InputFileError(
            f"INPUT {path}: expected a numeric .npy array, got unreadable data ({' '.join(str(e).split())})"
        ) from e
    if not isinstance(x, np.ndarray):  # an .npz archive under a .npy name
        names = ", ".join(x.files[:8]) + (", ..." if len(x.files) > 8 else "")
        x.close()
        raise InputFileError(
            f"INPUT {path}: expected a .npy array, got an .npz archive (arrays {names}); save one array with np.save"
        )
    return x


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _has_header(path: Path) -> bool:
    """A first line is a header when one of its cells is text; an empty cell is missing data."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline(MAX_HEADER_LINE)
    return any(cell.strip() and not _is_number(cell) for cell in first.split(","))


def _read_csv(path: Path, dtype: np.dtype) -> np.ndarray:
    """Rows = time steps; one header row allowed. Errors name the file's line and column."""
    skip = 1 if _has_header(path) else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": refused by the caller
            return np.loadtxt(path, delimiter=",", ndmin=2, dtype=dtype, skiprows=skip)
    except ValueError as e:
        text = " ".join(str(e).split())  # numpy counts data rows from 0: name the file's line instead
        text = re.sub(
            r"at row (\d+), column (\d+)", lambda m: f"at line {int(m.group(1)) + 1 + skip}, column {m.group(2)}", text
        )
        raise InputFileError(
            f"INPUT {path}: expected rows of {dtype} numbers (one header row "
            f"allowed), got {text}; a timestamp or other non-feature column: pick the "
            f"features with --columns A,B,..."
        ) from e


def read_input(path: Path, data: DataSpec | None, dtype: np.dtype) -> np.ndarray:
    """INPUT through the model's data contract when it has one, else :func:`read_sequence`.

    A CSV for a model that knows its feature names is read by header; a .txt file for a
    model with a vocabulary is encoded to token ids.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv" and data is not None and data.features:
        return read_features(path, data)
    if suffix == ".txt" and data is not None and data.vocab:
        return encode_text(path, data.vocab)
    return read_sequence(path, dtype)


def read_csv_columns(path: Path, columns: str, dtype: np.dtype) -> np.ndarray:
    """The ``columns`` (header names or 0-based indices, comma-separated) of a CSV, in that order.

    Raises:
        InputFileError: not a CSV, a name not in the header, an index out of range, or
            non-numeric cells in a chosen column.
    """
    if path.suffix.lower() != ".csv":
        raise InputFileError(f"--columns: only for a .csv INPUT, got {path.name}")
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    names = [c.strip() for c in columns.split(",") if c.strip()]
    has_header = not all(_is_number(cell) for cell in header)
    picked = []
    for name in names:
        if name.isdigit() and int(name) < len(header):
            picked.append(int(name))
        elif has_header and name in [h.strip() for h in header]:
            picked.append([h.strip() for h in header].index(name))
        else:
            raise InputFileError(
                f"--columns: {name!r} is neither a column of {path.name} (header: "
                f"{','.join(header) if has_header else 'none'}) nor an index below {len(header)}"
            )
    try:
        return np.loadtxt(path, delimiter=",", ndmin=2, dtype=dtype, usecols=picked, skiprows=int(has_header))
    except ValueError as e:
        raise InputFileError(
            f"INPUT {path}: expected {dtype} numbers in columns {','.join(names)}, got {' '.join(str(e).split())}"
        ) from e


def _hint_columns(path: Path, x: np.ndarray, features: tuple | None) -> None:
    """A CSV with more or fewer columns than the model's features: say so, with --columns."""
    if path.suffix.lower() != ".csv" or features is None or len(features) != 1 or x.ndim != 2 or not x.shape[0]:
        return  # no rows: the caller's "no time step" error says it better
    if x.shape[1] != features[0]:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        raise InputFileError(
            f"INPUT {path}: expected {features[0]} feature columns, got {x.shape[1]} (header: "
            f"{','.join(header)}); pick the model's features with --columns A,B,... (names "
            f"or 0-based indices)"
        )


def write_outputs(
    path: Path, y: np.ndarray, batch_axis: int = 0, time_axis: int | None = 1, columns: list[str] | None = None
) -> None:
    """Write ``.npy`` as is, or ``.csv`` with one row per time step (batch 1 only), under a
    header row of ``columns`` when the model's data contract names them."""
    if path.suffix.lower() == ".npy":
        with atomic_write(path) as f:
            np.save(f, y)
    elif path.suffix.lower() == ".csv":
        if y.shape[batch_axis] != 1:
            raise ShapeError(f"--out: CSV holds one sequence, got a batch of {y.shape[batch_axis]}; use .npy")
        steps = y.shape[time_axis] if time_axis is not None else 1
        with atomic_write(path) as f:
            np.savetxt(
                f,
                y.reshape(steps, -1),
                delimiter=",",
                fmt="%.8g",
                header=",".join(columns) if columns else "",
                comments="",
            )
    else:
        raise click.BadParameter(f"expected a .npy or .csv file, got {path.name}", param_hint="--out")


def stream(
    sess, x: np.ndarray, chunk: int, step_axis: int = 1, out_axis: int = 1, use_step: bool = False
) -> np.ndarray:
    """Feed ``x`` through ``sess`` in chunks of ``chunk`` steps along ``step_axis``.

    ``use_step``: hand each chunk to ``sess.step`` as the graph takes it (foreign models
    whose graph input has a time axis) instead of ``sess.feed``.
    """
    steps = x.shape[step_axis]
    outs = []
    with Progress(steps, "run", "step", enabled=steps >= PROGRESS_MIN_STEPS) as bar:
        for start in range(0, steps, chunk):
            part = np.take(x, range(start, min(start + chunk, steps)), axis=step_axis)
            outs.append(sess.step(part) if use_step else sess.feed(part))
            bar.update(min(chunk, steps - start))
    return np.concatenate(outs, axis=out_axis)


def _prepare(contract, x: np.ndarray) -> tuple[np.ndarray, int, int, bool]:
    """(x with a batch axis, axis to step along, output time axis, use step()) for INPUT."""
    io = contract.input
    rank = len(io.dims)
    if io.time_axis is not None:  # rnnx file: (T, F...) or the model's own layout
        if x.ndim == rank - 1:
            x = np.expand_dims(x, io.batch_axis)  # (T, F...) -> (1, T, F...) (or (T, 1, F...))
        want, step_axis, out_axis, use_step = rank, io.time_axis, contract.output.time_axis, False
    elif rank >= 3 and io.dims[1] is None and not contract.context:
        # foreign graph with a free axis 1 (batch, time, ...): chunks go to the graph as they are
        if x.ndim == rank - 1:
            x = x[None]
        want, step_axis, out_axis, use_step = rank, 1, 1, True
    else:  # foreign graph taking one frame per call: INPUT is (T, frame...) or (B, T, frame...)
        if x.ndim == rank:
            x = x[None]
        want, step_axis, out_axis, use_step = rank + 1, 1, 1, False
    if x.ndim != want:
        raise ShapeError(
            f"INPUT: expected (time, features...) or (batch, time, features...) with "
            f"{want - 1} or {want} axes, got shape {x.shape}"
        )
    return x, step_axis, out_axis if out_axis is not None else 1, use_step


def _raise_if_model_failed(e: Exception, model: str, input_path: Path) -> None:
    """onnxruntime failing inside the graph (a Reshape that does not fit, ...) is the model's
    problem with this input, not a bug in rnnx: one line naming both."""
    from_ort = type(e).__module__.startswith("onnxruntime") or (  # IOBinding runs raise a plain RuntimeError
        type(e) is RuntimeError and str(e).startswith("Error in execution")
    )
    if not from_ort:
        return
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise InputValueError(f"MODEL {model} failed at run time on INPUT {input_path} ({first[:300]})") from e


def _summary(y: np.ndarray, time_axis: int = 1, columns: list[str] | None = None) -> str:
    last_step = np.take(y, -1, axis=time_axis)
    last = (
        " ".join(f"{c}={v:.6g}" for c, v in zip(columns, last_step[0]))
        if columns
        else np.array2string(last_step.ravel()[:8], precision=4)
    )
    return f"output shape {y.shape}  mean {y.mean():.6g}  min {y.min():.6g}  max {y.max():.6g}\nlast step: {last}"


@command(json_report=True)
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--chunk", type=click.IntRange(min=1), default=64, show_default=True, help="Time steps per runtime call.")
@click.option("--provider", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write outputs (.npy, .csv with named columns when the model names them, .txt with --decode).",
)
@click.option("--decode", is_flag=True, help="Token models: print the most likely character at every step as text.")
@click.option("--state-in", type=click.Path(exists=True, dir_okay=False), help="Start from this state file.")
@click.option("--state-out", type=click.Path(dir_okay=False), help="Save the final state here.")
@click.option(
    "--check-finite",
    type=click.Choice(["off", "warn", "raise"]),
    default="off",
    show_default=True,
    help="On NaN/inf in the input or output: nothing, a warning, or an error (onnxruntime's "
    "LSTM turns NaN inputs into finite, wrong numbers).",
)
@click.option(
    "--step-graph/--no-step-graph",
    default=True,
    show_default=True,
    help="Run one-step chunks on the model's step graph when it has one (a loop-free .onnx "
    "beside it); --no-step-graph runs every call on MODEL and does not load the second graph.",
)
@click.option(
    "--columns",
    metavar="A,B,...",
    help="CSV INPUT: the feature columns, by header name or "
    "0-based index, in the model's order (the others, a timestamp say, are left out).",
)
@runtime_options
def run(
    model: str,
    input_path: Path,
    chunk: int,
    provider: str,
    out: Path | None,
    decode: bool,
    state_in: str | None,
    state_out: str | None,
    check_finite: str,
    step_graph: bool,
    columns: str | None,
    state_map: tuple[str, ...],
    constant: tuple[str, ...],
    context: int,
) -> dict[str, Any]:
    """Stream INPUT, a recorded sequence (T, F...) or batch (B, T, F...), through MODEL.

    INPUT is .npy or .csv (one row per time step). Without --out a summary is printed.
    A model trained by `rnnx train` carries its data contract: INPUT may then be the
    training CSV as it is (its feature columns are picked by name, in order, and empty
    cells filled as in training), outputs get named columns (e.g. load+1..load+H), and a
    token model takes a .txt file and prints text with --decode.
    For ONNX files rnnx did not write, name the state pairs with --state-map (see
    `rnnx inspect MODEL`); each row of INPUT is then one call of the graph, or, when the
    graph's input is (batch, time, ...), INPUT is cut into --chunk steps along time.
    JSON: model, input, input_shape, output_shape, out, state_in, state_out, mean, min,
    max, last_step, columns (output names or null), text (with --decode, else null).

    \b
    Examples:
      rnnx run exported/model.onnx signal.npy --out y.npy --state-out state.npz
      rnnx run exported/model.onnx more.csv --state-in state.npz --out y.csv
      rnnx run exported/model.onnx signal.npy --json -
      rnnx run exported/model.onnx load.csv --out forecast.csv     # a --csv model: named columns
      rnnx run exported/chars.onnx hello.txt --decode
      rnnx run vad.onnx frames.npy --state-map state=stateN --constant sr=16000 --context 64
    """
    from rnnx.runtime import RuntimeOptions, StreamingSession
    from rnnx.runtime.contract import open_model

    foreign = foreign_options(model, state_map, constant, context)
    run_options = RuntimeOptions(providers=provider, check_finite=check_finite, step_graph=step_graph)
    backend, contract = open_model(model, run_options, foreign)
    backend.close()
    if not contract.streamable and (state_in or state_out):
        raise NotStreamableError(
            f"--state-in/--state-out: {model} is bidirectional: it runs whole sequences "
            "from a zero state, so it has no state to load or save"
        )
    data = contract.spec.data if contract.spec is not None else None
    if decode and (data is None or not data.vocab):
        raise InputValueError(
            f"--decode: {model} has no vocabulary in its data contract (token models trained by rnnx train have one)"
        )
    if columns is not None:
        raw = read_csv_columns(input_path, columns, np.dtype(contract.input.dtype))
    else:
        raw = read_input(input_path, data, contract.input.dtype)
        if not state_map and contract.spec is not None:  # an rnnx file: its features are declared
            _hint_columns(input_path, raw, contract.spec.input.feature_shape)
    x, step_axis, out_axis, use_step = _prepare(contract, raw)
    if x.size == 0 or x.shape[step_axis] == 0:
        raise InputFileError(f"INPUT {input_path}: expected at least one time step, got none (shape {x.shape})")
    # the whole input at once, so the position named is the file's (the session checks per chunk)
    check_token_ids("INPUT", x, contract.vocab_size)
    with StreamingSession(
        model, options=run_options, batch_size=x.shape[contract.input.batch_axis], foreign=foreign
    ) as sess:
        if state_in:
            sess.load_state(state_in)
        try:
            y = stream(sess, x, chunk, step_axis, out_axis, use_step) if contract.streamable else sess.run(x)
        except Exception as e:  # only onnxruntime's own errors become the model's (below)
            _raise_if_model_failed(e, model, input_path)
            raise
        if state_out:
            sess.save_state(state_out)
    out_columns = output_columns(data, y)
    vocab = data.vocab if decode and data else None
    text = decode_tokens(y, vocab, contract.output.batch_axis, out_axis) if vocab else None
    if out is not None and text is not None and out.suffix.lower() == ".txt":
        write_text_atomic(out, "\n".join(text) + "\n")
        echo(f"wrote {out} ({len(text)} text(s))")
    elif out is not None:
        write_outputs(out, y, contract.output.batch_axis, out_axis, out_columns)
        echo(f"wrote {out} {y.shape}")
    elif text is not None:
        echo("\n".join(text))
    else:
        echo(_summary(y, out_axis, out_columns))
    return {
        "columns": out_columns,
        "text": text,
        "model": model,
        "input": str(input_path),
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "out": None if out is None else str(out),
        "state_in": state_in,
        "state_out": state_out,
        "mean": float(y.mean()),
        "min": float(y.min()),
        "max": float(y.max()),
        "last_step": np.take(y, -1, axis=out_axis).tolist(),
    }
