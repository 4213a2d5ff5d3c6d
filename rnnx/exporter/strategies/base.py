"""The one interface every ONNX export strategy implements, and the helpers they share."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Iterator, Protocol

import onnx
import torch
from torch import nn

from rnnx.spec import BATCH, TIME, ModelSpec


@dataclass
class ExportContext:
    """Everything a strategy needs to build one graph.

    Attributes:
        model: an eval-mode deep copy of the user's model (strategies may change it).
        example: the batch-first example input (batch 2, 5 steps unless the user chose).
        state: non-zero example state at the example's batch size.
        spec: the contract the graph must implement.
        opset: ONNX opset to emit.
    """

    model: nn.Module  # eval-mode deep copy; the user's model is never touched
    example: torch.Tensor  # (B, T, ...) example input
    state: list[torch.Tensor]  # example state, one tensor per spec.state entry
    spec: ModelSpec  # names, shapes and dtypes the graph must have
    opset: int  # ONNX opset version


class Strategy(Protocol):
    """Builds an ONNX graph implementing ``ctx.spec``; raises anything on failure."""

    name: str  # recorded in the spec's ``exporter`` field
    auto: bool  # tried by ``strategy="auto"``

    def build(self, ctx: ExportContext) -> onnx.ModelProto: ...


class Flat(nn.Module):
    """``forward(x, *state) -> (y, *new_state)``: the contract with a flat signature."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.model(x, list(state))
        return (y, *new)


@contextlib.contextmanager
def _fds_silenced(fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Send the process's stdout/stderr (torch's C++ prints IR graphs there) to devnull."""
    try:
        saved = [os.dup(fd) for fd in fds]
    except OSError:  # no usable fds (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch's export warnings and chatter (Python and C++ level)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()), _fds_silenced():
        warnings.simplefilter("ignore")
        yield


def io_names(spec: ModelSpec) -> tuple[list[str], list[str]]:
    """Graph input and output names in call order: ``x, *_in`` and ``y, *_out``."""
    return ([spec.input.name, *(s.input for s in spec.state)],
            [spec.output.name, *(s.output for s in spec.state)])


def dynamic_axes(spec: ModelSpec, time: bool = True) -> dict[str, dict[int, str]]:
    """``dynamic_axes`` for ``torch.onnx.export``: batch (and time) on data, batch on state."""
    data = {spec.input.batch_axis: BATCH}
    if time and spec.input.time_axis is not None:
        data[spec.input.time_axis] = TIME
    axes = {spec.input.name: dict(data), spec.output.name: dict(data)}
    for s in spec.state:
        axes[s.input] = {s.batch_axis: BATCH}
        axes[s.output] = {s.batch_axis: BATCH}
    return axes


def export_traced(module: nn.Module, args: tuple, spec: ModelSpec, opset: int,
                  names: tuple[list[str], list[str]] | None = None,
                  axes: dict[str, dict[int, str]] | None = None) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=False)`` into memory, returned as a ModelProto."""
    inputs, outputs = names or io_names(spec)
    buf = io.BytesIO()
    with quiet(), torch.no_grad():
        torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset,
                          input_names=inputs, output_names=outputs,
                          dynamic_axes=axes if axes is not None else dynamic_axes(spec),
                          do_constant_folding=True)
    return onnx.load_from_string(buf.getvalue())
