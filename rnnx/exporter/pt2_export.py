"""Export a contract module as torch.export programs (``.pt2``): the step, and the chunk where torch allows.

- ``model.pt2``: one time step, ``forward(x_t, *state) -> (y_t, *new_state)`` (``x_t`` is ``x``
  without its time axis), dynamic batch. This is what :class:`rnnx.runtime.StreamingSession`
  opens (the time loop stays in the runtime, :mod:`rnnx.runtime.program_backend`).
- ``model.chunk.pt2``: the contract's whole call, ``forward(x, *state) -> (y, *new_state)``,
  dynamic batch and time, written when torch.export keeps the time axis dynamic (nn.LSTM /
  nn.GRU through torch's while-loop decompositions, cells looped in Python do not) and the
  program matches the model at other sizes; else skipped with the reason logged.

Both carry the contract as the extra file ``rnnx.spec`` and load with plain
``torch.export.load`` (rnnx not needed)::

    extra = {"rnnx.spec": ""}
    step = torch.export.load("model.pt2", extra_files=extra).module()
    y_t, h, c = step(x_t, h, c)
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import ExportError
from rnnx.exporter.contract import derive_spec, eval_copy, example_for, producer_versions
from rnnx.exporter.onnx_export import Attempt, ExportResult
from rnnx.exporter.parity import probe, random_state
from rnnx.exporter.strategies.base import Flat, quiet
from rnnx.exporter.strategies.dynamo import dynamic_shapes, model_axes, reset_rnn_caches
from rnnx.exporter.strategies.scan import StepModule
from rnnx.onnx_tools.runners import Runner
from rnnx.spec import BATCH, METADATA_KEY, ModelSpec, io_names

logger = logging.getLogger(__name__)
EXPORTER = "torch.export"


def chunk_file_name(path: Path) -> str:
    """``model.pt2`` -> ``model.chunk.pt2``."""
    return f"{path.stem}.chunk{path.suffix}"


def time_axis(spec: ModelSpec, what: str = "the model") -> int:
    """The input's time axis of a streamable spec.

    Raises:
        ExportError: no time axis, or not streamable (bidirectional models see future steps).
    """
    if spec.input.time_axis is None or not spec.streamable:
        raise ExportError(
            f"{what}: a step program needs a streamable model with a time axis (bidirectional models see future steps)"
        )
    return spec.input.time_axis


def step_module(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """``forward(x_t, *state) -> (y_t, *new_state)``: the model on one time slice."""
    return StepModule(model, time_axis(spec, type(model).__name__))


def step_shapes(spec: ModelSpec, batch: torch.export.Dim) -> tuple:
    """``dynamic_shapes`` of the step module: batch on ``x_t`` and on each state (``*state`` is one argument)."""
    return {spec.input.batch_axis: batch}, tuple({s.batch_axis: batch} for s in spec.state)


def export_step(
    model: nn.Module, example: torch.Tensor, state: list[torch.Tensor], spec: ModelSpec
) -> torch.export.ExportedProgram:
    """The step program, dynamic batch (``torch.export.export``, non-strict)."""
    step = step_module(model, spec)
    x_t = example.select(time_axis(spec), 0)  # (B, ...) one time slice
    with quiet(), torch.no_grad():
        return torch.export.export(
            step, (x_t, *state), dynamic_shapes=step_shapes(spec, torch.export.Dim(BATCH)), strict=False
        )


def export_chunk(
    model: nn.Module, example: torch.Tensor, state: list[torch.Tensor], spec: ModelSpec
) -> torch.export.ExportedProgram:
    """The whole call, dynamic batch and time (RNN layers through torch's while-loop decompositions)."""
    from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition

    module, args = Flat(model), (example, *state)
    shapes = dynamic_shapes(module, args, io_names(spec)[0], model_axes(spec))
    reset_rnn_caches()
    with quiet(), torch.no_grad(), register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
        program = torch.export.export(module, args, dynamic_shapes=shapes, strict=False)
    reset_rnn_caches()  # the decompositions leave the RNN ops' dispatch caches pointing at them
    return program


def program_runner(program: torch.export.ExportedProgram, step: bool, spec: ModelSpec) -> Runner:
    """A program as a numpy runner of the contract: the step one looped over time."""
    module = program.module()

    def call(*args: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [o.numpy() for o in module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in args))]

    def run(x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        if not step:
            y, *new = call(x, *state)
            return y, new
        t_axis = time_axis(spec)
        ys = []
        for t in range(x.shape[t_axis]):
            y_t, *state = call(x.take(t, axis=t_axis), *state)
            ys.append(y_t)
        return np.stack(ys, axis=spec.output.time_axis or 1), state

    return run


def _save(program: torch.export.ExportedProgram, path: Path, spec: ModelSpec) -> None:
    buf = io.BytesIO()
    torch.export.save(program, buf, extra_files={METADATA_KEY: spec.to_json()})
    write_bytes_atomic(path, buf.getvalue())  # a reader never sees half a program


def export_pt2(
    model: nn.Module, path: str | os.PathLike, *, example_input: torch.Tensor | None = None, chunk: bool = True
) -> ExportResult:
    """Write ``path`` (the step program, ``.pt2``) and, where torch.export allows, ``<stem>.chunk.pt2``.

    Each program is checked against the model (the parity probe: batch 3, other lengths)
    before it is written; the step program's failure is an error, the chunk's a logged skip.

    Args:
        model: a streamable contract module (not modified).
        path: the step program's file (``.pt2``).
        example_input: batch-first example; default ``model.example_input(2, 5)``.
        chunk: also try the chunk program.

    Returns:
        An :class:`ExportResult`: strategy "torch.export"; ``attempts`` lists "step" and "chunk".

    Raises:
        ExportError: the model is not streamable, or torch.export cannot capture its step or the
            step program differs from the model.
    """
    import time as clock

    work = eval_copy(model)
    example = example_for(work, example_input)
    spec = derive_spec(work, example, exporter=EXPORTER)
    spec = dataclasses.replace(spec, extra={**spec.extra, "producers": producer_versions()})
    state = random_state(work, example.shape[spec.input.batch_axis], seed=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = clock.perf_counter()
    try:
        step = export_step(work, example, state, spec)
        probe(work, program_runner(step, True, spec), spec, what="step program parity")
    except Exception as e:  # torch.export raises many types; each is a failed export
        raise ExportError(
            f"could not export {type(model).__name__} as a torch.export step program: {' '.join(str(e).split())[:400]}"
        ) from e
    attempts = [Attempt("step", True, "ok", clock.perf_counter() - start)]
    chunk_path = out.with_name(chunk_file_name(out))
    if chunk:
        start = clock.perf_counter()
        try:
            program = export_chunk(work, example, state, spec)
            probe(work, program_runner(program, False, spec), spec, what="chunk program parity")
        except Exception as e:  # no dynamic time here: the step program streams it
            reason = " ".join(str(e).split())[:300]
            attempts.append(Attempt("chunk", False, reason, clock.perf_counter() - start, e))
            logger.info("no chunk program for %s: %s", type(model).__name__, reason)
        else:
            attempts.append(Attempt("chunk", True, "ok", clock.perf_counter() - start))
            _save(program, chunk_path, spec)
    if not (chunk and attempts[-1].ok) and chunk_path.is_file():
        chunk_path.unlink()  # an older export's chunk would not match this step program
    _save(step, out, spec)
    return ExportResult(out, spec, EXPORTER, tuple(attempts))
