"""Input validation, done before any compute so a failed call changes nothing.

Dtype policy: other float dtypes (float64, float16) are converted to the graph's float
type; integer or bool arrays given for a float input are rejected with DTypeError (a
token id array passed to an audio model is a bug, not data). Integer inputs (token
models) accept any integer dtype and reject floats.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rnnx.errors import DTypeError, InputValueError, NonFiniteError, ShapeError, StateError
from rnnx.runtime.contract import CONTEXT_KEY, Contract, DataIO, axis_labels


def as_array(name: str, x: Any) -> np.ndarray:
    """``x`` as an array (no copy when it is one).

    Raises:
        ShapeError: naming ``name``, for a nested sequence numpy cannot make an array of
            (rows of different lengths), instead of numpy's own ValueError.
    """
    try:
        return np.asarray(x)
    except ValueError:  # numpy: "... an inhomogeneous shape after N dimensions ..."
        raise ShapeError(
            f"{name}: expected an array, got a ragged nested sequence (rows of different lengths)"
        ) from None


def coerce_dtype(name: str, x: Any, want: np.dtype) -> np.ndarray:
    """Return ``x`` as an array of dtype ``want``, converting only lossless-in-kind cases.

    Raises:
        DTypeError: ints/bools for a float input, floats for an int input, and so on.
        ShapeError: a ragged nested sequence (see :func:`as_array`).
    """
    arr = as_array(name, x)
    if arr.dtype == want:
        return arr
    have = arr.dtype.kind
    ok = (want.kind == "f" and have == "f") or (want.kind in "iu" and have in "iu")
    if not ok:
        hint = f" (convert with x.astype(np.{want.name}))" if want.kind == "f" else ""
        raise DTypeError(f"{name}: expected dtype {want.name}, got {arr.dtype.name}{hint}")
    return arr.astype(want)


def _fmt(dims: Sequence[int | None], labels: Sequence[str]) -> str:
    shown = tuple("T" if lab == "time" and d is None else "?" if d is None else d for d, lab in zip(dims, labels))
    inner = ", ".join(str(d) for d in shown) + ("," if len(shown) == 1 else "")
    return f"({inner}) ({', '.join(labels)})"


def check_shape(name: str, shape: tuple[int, ...], dims: Sequence[int | None], labels: Sequence[str]) -> None:
    """Raise ShapeError unless ``shape`` fits ``dims`` (None matches any size)."""
    if len(shape) != len(dims) or any(d is not None and d != s for d, s in zip(dims, shape)):
        raise ShapeError(f"{name}: expected shape {_fmt(dims, labels)}, got {tuple(shape)}")


def _user_dims(io: DataIO, batch: int | None, with_time: bool, context: int) -> tuple[list, list]:
    """Expected dims and axis labels of the array the user passes."""
    dims: list[int | None] = list(io.dims)
    dims[io.batch_axis] = batch
    if context and dims and dims[-1] is not None:
        dims[-1] -= context
    labels = list(axis_labels(len(dims), io.batch_axis, io.time_axis))
    if io.time_axis is not None:
        dims[io.time_axis] = None
        if not with_time:
            del dims[io.time_axis], labels[io.time_axis]
    return dims, labels


def check_input(contract: Contract, x: Any, batch: int | None, *, with_time: bool) -> np.ndarray:
    """Validate a data input: a step slice (``with_time=False``) or a chunk.

    Args:
        contract: the model's contract.
        x: the array as the user passes it (before left context is prepended).
        batch: the required batch size, or None for any.
        with_time: True when x carries the time axis (feed/run), False for one step.

    Returns:
        ``x`` as a C-contiguous array of the graph's dtype.

    Raises:
        DTypeError: wrong dtype kind. ShapeError: wrong rank or size, or an empty array.
    """
    io = contract.input
    arr = coerce_dtype(io.name, x, io.dtype)
    dims, labels = _user_dims(io, batch, with_time, contract.context)
    check_shape(io.name, arr.shape, dims, labels)
    if with_time and io.time_axis is not None and arr.shape[io.time_axis] == 0:
        raise ShapeError(f"{io.name}: expected at least one time step, got shape {arr.shape}")
    if arr.size == 0:  # before onnxruntime: its LSTM/GRU kernels abort the process on batch 0
        raise ShapeError(
            f"{io.name}: expected a non-empty array (at least one sequence and one "
            f"value per axis), got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr)


def check_state(contract: Contract, state: Mapping[str, Any], batch: int) -> dict[str, np.ndarray]:
    """Validate a full state dict (names, shapes, dtypes) and return converted copies.

    Raises:
        StateError: missing or unknown names, wrong shapes or dtypes.
    """
    if not isinstance(state, Mapping):
        raise StateError(f"state: expected a dict of arrays, got {type(state).__name__}")
    expected = {s.name: (s.concrete_shape(batch), np.dtype(s.dtype)) for s in contract.states}
    if contract.context:
        expected[CONTEXT_KEY] = ((batch, contract.context), contract.context_dtype)
    if set(state) != set(expected):
        raise StateError(f"state: expected keys {sorted(expected)}, got {sorted(state)}")
    out = {}
    for name, (shape, dtype) in expected.items():
        arr = np.asarray(state[name])
        if arr.shape != shape:
            raise StateError(f"state[{name!r}]: expected shape {shape}, got {arr.shape}")
        if arr.dtype != dtype and not (arr.dtype.kind == dtype.kind == "f"):
            raise StateError(f"state[{name!r}]: expected dtype {dtype.name}, got {arr.dtype.name}")
        out[name] = np.array(arr, dtype=dtype, copy=True, order="C")
    return out


def check_finite(mode: str, name: str, arr: np.ndarray, what: str, undo: Callable[[], None] | None = None) -> None:
    """Apply ``RuntimeOptions.check_finite`` to an input or output array.

    Args:
        mode: "off" (nothing), "warn" (RuntimeWarning) or "raise" (NonFiniteError).
        name: the tensor's name, for the message.
        arr: the array to check (non-float arrays always pass).
        what: "input" or "output".
        undo: called before raising, to put the state back as it was.

    Raises:
        NonFiniteError: a NaN or inf with ``mode="raise"``.
    """
    if mode == "off" or arr.dtype.kind not in "fc":
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    msg = (
        f"{name}: expected finite values in the {what}, got {arr.size - np.count_nonzero(finite)} "
        f"NaN/inf of {arr.size} (check_finite={mode!r})"
    )
    if mode == "warn":
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return
    if undo is not None:
        undo()
    raise NonFiniteError(msg + "; the state is unchanged")


TOKEN_BLOCK = 1 << 20  # token ids searched this many at a time for the error (a mapped file stays mapped)
SMALL_TOKENS = 32  # up to this many ids are compared in Python (a step's batch), faster than numpy there


def token_ids_in_range(x: np.ndarray, vocab_size: int) -> bool:
    """True when every id of the non-empty integer array ``x`` lies in ``[0, vocab_size)``.

    The per-call check of a token model (every step), so it is cheap: a few ids are compared
    in Python; more take one reduction and no temporary array, the maximum over ``x`` viewed
    as unsigned, where a negative id reads as one of at least ``2**(bits - 1)``. Finding the
    culprit is left to the error paths (:func:`check_token_ids`, ``StreamPool``).
    """
    if x.size <= SMALL_TOKENS:  # a step's few ids: Python beats a numpy reduction's fixed cost
        ids = x.ravel().tolist()
        return min(ids) >= 0 and max(ids) < vocab_size
    limit = vocab_size
    if x.dtype.kind == "i":  # negatives become >= 2**(bits-1); above that no signed id is valid anyway
        limit = min(vocab_size, 1 << (8 * x.dtype.itemsize - 1))
        x = x.view(x.dtype.str.replace("i", "u"))  # same byte order and width
    return bool(np.maximum.reduce(x, axis=None) < limit)


def check_token_ids(name: str, x: np.ndarray, vocab_size: int | None) -> None:
    """Refuse token ids outside ``[0, vocab_size)`` (negative ids too) before onnxruntime sees them.

    The range test is :func:`token_ids_in_range`, shared with StreamPool (which names the
    offending stream itself); StreamingSession, the Triton python backend and ``rnnx run`` call this.

    Raises:
        InputValueError: naming ``name``, the first bad id, its position and the valid range.
    """
    if vocab_size is None or x.dtype.kind not in "iu" or x.size == 0 or token_ids_in_range(x, vocab_size):
        return
    flat = x.reshape(-1)
    for start in range(0, flat.size, TOKEN_BLOCK):
        block = np.asarray(flat[start : start + TOKEN_BLOCK])
        bad = np.flatnonzero((block < 0) | (block >= vocab_size))
        if bad.size:
            where = tuple(int(i) for i in np.unravel_index(start + int(bad[0]), x.shape))
            raise InputValueError(
                f"{name}: expected token ids in [0, {vocab_size}) (vocab_size "
                f"{vocab_size}), got {int(block[bad[0]])} at index {where}"
            )
