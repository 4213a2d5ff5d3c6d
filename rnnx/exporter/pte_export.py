"""Export a contract module as an ExecuTorch program (``.pte``): one time step with explicit state.

The program's ``forward`` is the step of :mod:`rnnx.exporter.pt2_export`,
``(x_t, *state) -> (y_t, *new_state)``, with a dynamic batch up to :data:`MAX_BATCH`
(ExecuTorch plans memory for the bound). The time loop stays in the runtime
(:mod:`rnnx.runtime.program_backend`): ``nn.LSTM`` does not export with a dynamic time axis.
The contract travels inside the program as the constant method ``rnnx_spec`` (the spec's
JSON as uint8), so the file alone is the artifact.

Lowering: XNNPACK-delegated where it lowers and matches the model, else ExecuTorch's
portable kernels. Gates split with ``chunk``/``split`` (nn.GRU's decomposition, most hand
written cells, rnnx's ConvLSTM) make the lowering silently freeze the batch size at the
example's; they are rewritten as slices (``narrow``) while the program is captured and
lowered, which keeps it dynamic. Every candidate is run in ExecuTorch's runtime at batch
sizes other than the example's (the parity probe) before it is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import ConfigError, ExportError
from rnnx.exporter.contract import derive_spec, eval_copy, example_for, producer_versions
from rnnx.exporter.onnx_export import Attempt, ExportResult
from rnnx.exporter.parity import probe, random_state
from rnnx.exporter.pt2_export import step_module, step_shapes, time_axis
from rnnx.exporter.strategies.base import quiet
from rnnx.onnx_tools.runners import Runner
from rnnx.runtime.executorch_backend import SPEC_METHOD, open_pte
from rnnx.spec import BATCH, ModelSpec

logger = logging.getLogger(__name__)
MAX_BATCH = 256  # upper bound of the program's dynamic batch (ExecuTorch plans memory for it)
LOWERINGS = ("xnnpack", "portable")  # tried in this order by lowering="auto"


def _chunk(t: torch.Tensor, chunks: int, dim: int = 0) -> tuple[torch.Tensor, ...]:
    """``torch.chunk`` as slices: pieces of ceil(size / chunks), the last one shorter."""
    size = t.shape[dim]
    step = -(-size // chunks)
    return tuple(t.narrow(dim, i * step, min(step, size - i * step)) for i in range(chunks) if i * step < size)


def _split(t: torch.Tensor, split_size: int | Sequence[int], dim: int = 0) -> tuple[torch.Tensor, ...]:
    """``Tensor.split`` as slices."""
    size = t.shape[dim]
    sizes = (
        [min(split_size, size - i) for i in range(0, size, split_size)]
        if isinstance(split_size, int)
        else list(split_size)
    )
    out, at = [], 0
    for n in sizes:
        out.append(t.narrow(dim, at, n))
        at += n
    return tuple(out)


@contextlib.contextmanager
def sliced_gates() -> Iterator[None]:
    """``Tensor.chunk``/``torch.chunk``/``Tensor.split`` emit slices while a program is captured and lowered."""
    saved = torch.Tensor.chunk, torch.Tensor.split, torch.chunk
    torch.Tensor.chunk, torch.Tensor.split = _chunk, _split  # type: ignore[method-assign,assignment]
    torch.chunk = _chunk  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.Tensor.chunk, torch.Tensor.split, torch.chunk = saved  # type: ignore[method-assign]


def lower(model: nn.Module, example: torch.Tensor, state: list[torch.Tensor], spec: ModelSpec, lowering: str) -> bytes:
    """The step program lowered for ExecuTorch (``lowering``: "xnnpack" or "portable"), as bytes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    x_t = example.select(time_axis(spec), 0)  # (B, ...) one time slice
    batch = torch.export.Dim(BATCH, min=1, max=MAX_BATCH)
    spec_bytes = torch.tensor(list(spec.to_json().encode("utf-8")), dtype=torch.uint8)
    with quiet(), torch.no_grad(), sliced_gates():
        program = torch.export.export(
            step_module(model, spec), (x_t, *state), dynamic_shapes=step_shapes(spec, batch), strict=False
        )
        edge = to_edge_transform_and_lower(
            program,
            partitioner=[XnnpackPartitioner()] if lowering == "xnnpack" else None,
            constant_methods={SPEC_METHOD: spec_bytes},
        )
        return bytes(edge.to_executorch().buffer)


def _runner(data: bytes) -> tuple[Runner, Any]:
    """The program run in ExecuTorch's runtime as a parity runner (and its backend, to close)."""
    tmp = tempfile.NamedTemporaryFile(suffix=".pte", delete=False)
    try:
        tmp.write(data)
        tmp.close()
        backend = open_pte(Path(tmp.name))
    finally:
        os.unlink(tmp.name)  # loaded: ExecuTorch keeps its own copy
    names = [backend.spec.output.name, *(s.output for s in backend.spec.state)]
    feeds = [backend.spec.input.name, *(s.input for s in backend.spec.state)]

    def run(x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        y, *new = backend.run(names, dict(zip(feeds, [x, *state], strict=True)))
        return y, new

    return run, backend


def export_pte(
    model: nn.Module, path: str | os.PathLike, *, example_input: torch.Tensor | None = None, lowering: str = "auto"
) -> ExportResult:
    """Write ``path``: the model's step as an ExecuTorch program, checked in ExecuTorch's runtime.

    Args:
        model: a streamable contract module (not modified).
        path: the file to write (``.pte``).
        example_input: batch-first example; default ``model.example_input(2, 5)``.
        lowering: "auto" (XNNPACK, else portable), "xnnpack" or "portable".

    Returns:
        An :class:`ExportResult`, strategy "executorch-xnnpack" or "executorch-portable";
        ``attempts`` lists each lowering tried.

    Raises:
        ExportError: ExecuTorch is not installed, the model is not streamable, or no lowering
            gives a program that matches the model (each one's reason is given).
        ConfigError: an unknown lowering.
    """
    if lowering not in ("auto", *LOWERINGS):
        raise ConfigError(f"lowering: expected one of auto, {', '.join(LOWERINGS)}, got {lowering!r}")
    try:
        import executorch.exir  # noqa: F401
    except ImportError:
        raise ExportError(
            '--format pte needs ExecuTorch, which is not installed: pip install "rnnx[executorch]"'
        ) from None
    work = eval_copy(model)
    example = example_for(work, example_input)
    spec = derive_spec(work, example, exporter="executorch")
    step_module(work, spec)  # refuses a model that cannot stream, before any lowering
    state = random_state(work, example.shape[spec.input.batch_axis], seed=7)
    attempts: list[Attempt] = []
    for name in LOWERINGS if lowering == "auto" else (lowering,):
        start = time.perf_counter()
        candidate = dataclasses.replace(
            spec, exporter=f"executorch-{name}", extra={"producers": producer_versions(), "max_batch": MAX_BATCH}
        )
        try:
            data = lower(work, example, state, candidate, name)
            run, backend = _runner(data)
            try:
                probe(work, run, candidate, what=f"ExecuTorch ({name}) parity")
            finally:
                backend.close()
        except Exception as e:  # lowering and runtime failures come in many types
            attempts.append(
                Attempt(f"executorch-{name}", False, " ".join(str(e).split())[:400], time.perf_counter() - start, e)
            )
            logger.info("ExecuTorch %s lowering rejected: %s", name, attempts[-1].reason)
            continue
        attempts.append(Attempt(f"executorch-{name}", True, "ok", time.perf_counter() - start))
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out, data)
        return ExportResult(out, candidate, candidate.exporter, tuple(attempts))
    detail = "; ".join(f"{a.strategy}: {a.reason}" for a in attempts)
    raise ExportError(f"could not export {type(model).__name__} as an ExecuTorch program: {detail}") from attempts[
        -1
    ].error
