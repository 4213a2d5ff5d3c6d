"""``--state-map``, ``--constant`` and ``--context``: the CLI twins of the runtime's options.

They describe an ONNX file rnnx did not write to :class:`~rnnx.runtime.StreamingSession`
(``state_map=``, ``constants=``, ``context=``); ``rnnx run`` and ``rnnx bench`` share them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from rnnx.errors import DTypeError, SpecError
from rnnx.runtime.contract import ForeignModel

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)


def runtime_options(func: F) -> F:
    """Add the three options to a click command (as ``state_map``, ``constant``, ``context``)."""
    func = click.option(
        "--context",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        metavar="K",
        help="Keep the last K values of the data input's last axis and "
        "prepend them to the next call (zeros at the start); inputs without a time "
        "axis only.",
    )(func)
    func = click.option(
        "--constant",
        "constant",
        multiple=True,
        metavar="NAME=VALUE",
        help="Feed graph input NAME this value on every call (repeatable). VALUE is a "
        "number, given the graph input's dtype (e.g. int64 for sr=16000), or a .npy file.",
    )(func)
    func = click.option(
        "--state-map",
        "state_map",
        multiple=True,
        metavar="IN=OUT",
        help="Graph input IN receives the state that graph output OUT returned on the "
        "previous call (repeatable); for ONNX files rnnx did not write (see rnnx inspect).",
    )(func)
    return func


def _pair(text: str, option: str, meta: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise SpecError(f"{option}: expected {meta}, got {text!r}")
    return name, value


def parse_state_map(items: tuple[str, ...]) -> dict[str, str] | None:
    """``("h0=hn", "c0=cn")`` -> ``{"h0": "hn", "c0": "cn"}``; None when no item is given."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        i, o = _pair(item, "--state-map", "IN=OUT")
        if i in out:
            raise SpecError(f"--state-map: {i!r} is mapped twice ({i}={out[i]} and {item})")
        out[i] = o
    return out


def _graph_input_dtypes(model: str) -> dict[str, np.dtype]:
    from rnnx.runtime import RuntimeOptions
    from rnnx.runtime.backend import open_backend
    from rnnx.runtime.contract import ort_dtype

    backend = open_backend(model, RuntimeOptions())
    try:
        return {t.name: ort_dtype(t, t.name) for t in backend.inputs()}
    finally:
        backend.close()


def parse_constant(name: str, value: str, dtype: np.dtype) -> np.ndarray:
    """A ``--constant`` value as an array of the graph input's ``dtype``.

    Raises:
        DTypeError: a fractional number for an integer input, or text that is no number.
    """
    if value.lower().endswith(".npy"):
        arr = np.load(Path(value), allow_pickle=False)  # FileNotFoundError is a user error
        if arr.dtype.kind != dtype.kind and not (arr.dtype.kind in "iu" and dtype.kind in "iu"):
            raise DTypeError(f"--constant {name}: expected a {dtype.name} array, got {arr.dtype.name} in {value}")
        return arr.astype(dtype)
    try:
        number = float(value)
    except ValueError:
        raise DTypeError(f"--constant {name}: expected a number or a .npy file, got {value!r}") from None
    if dtype.kind in "iub":
        if not number.is_integer():
            raise DTypeError(f"--constant {name}: graph input {name} is {dtype.name}, got {value!r}")
        return np.asarray(int(number), dtype=dtype)
    return np.asarray(number, dtype=dtype)


def foreign_options(model: str, state_map: tuple[str, ...], constant: tuple[str, ...], context: int) -> ForeignModel:
    """The :class:`~rnnx.runtime.ForeignModel` for StreamingSession / StreamPool / open_model."""
    kw: dict[str, Any] = {"state_map": parse_state_map(state_map), "context": context}
    if constant:
        dtypes = _graph_input_dtypes(model)
        consts: dict[str, np.ndarray] = {}
        for item in constant:
            name, value = _pair(item, "--constant", "NAME=VALUE")
            if name not in dtypes:
                raise SpecError(f"--constant {name}: not a graph input; inputs: {sorted(dtypes)}")
            consts[name] = parse_constant(name, value, dtypes[name])
            logger.info(
                "--constant %s: fed as %s %s (the graph input's dtype)",
                name,
                consts[name].dtype.name,
                "scalar" if consts[name].ndim == 0 else consts[name].shape,
            )
        kw["constants"] = consts
    return ForeignModel(**kw)
