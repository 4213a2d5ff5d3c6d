"""Export a contract module to ONNX with explicit state inputs/outputs.

Several strategies can build the graph (see :mod:`rnnx.exporter.strategies`);
``strategy="auto"`` tries them in order (trace, proj-native, scan, scan-legacy, layer-scan)
and keeps the first graph that passes the structural checks and a parity probe at sizes other than the
export example. Each candidate is probed in a child process
(:mod:`rnnx.onnx_tools.ort_worker`): a graph that crashes onnxruntime is a rejected
candidate, not a dead process.

After a Scan graph is kept, a single-step graph (its Scans run once, inlined; see
:mod:`rnnx.onnx_tools.step_graph`) is checked against it at T=1 and written beside the file as
``<stem>.step.onnx`` (first), then the file itself with the spec's ``step_graph`` pointing to it
(:func:`rnnx.onnx_tools.step_graph.commit_onnx`: a re-export whose step graph differs writes it
as ``<stem>.step.<sha256[:12]>.onnx`` so the old model keeps its own until the new file lands).

:func:`export_onnx` in steps: :func:`_contract` (derive the spec off an eval-mode copy),
:func:`_first_passing` (per strategy, :func:`_candidate` builds the graph and :func:`_probe`
checks it), :func:`_write` (the step graph checked and written, then the file).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from rnnx.errors import ConfigError, ExportError
from rnnx.exporter.contract import derive_spec, eval_copy, example_for, producer_versions
from rnnx.exporter.parity import probe, random_input, random_state
from rnnx.exporter.strategies import DYNAMO_ORDER, STRATEGIES, ExportContext, auto_order
from rnnx.exporter.strategies.base import io_names
from rnnx.onnx_tools.graph import finalize
from rnnx.onnx_tools.ort_worker import isolated_runner
from rnnx.onnx_tools.step_graph import (
    PROBE_BATCH,
    PROBE_SEED,
    Probe,
    agrees_at_one_step,
    commit_onnx,
    inline_scans,
)
from rnnx.spec import ModelSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One strategy tried during an export."""

    strategy: str  # strategy name
    ok: bool  # True if its graph was kept
    reason: str  # "ok" or why it was rejected (the exception's full message, one line)
    seconds: float  # time spent building and checking
    error: BaseException | None = field(default=None, compare=False, repr=False)  # why, with traceback


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        path: the written file.
        spec: its state contract (also stored in the file).
        strategy: the strategy that produced it.
        attempts: every strategy tried, in order, with why it was rejected.
        step_graph_path: the single-step graph written beside ``path`` (``spec.step_graph``
            names it), or None.
    """

    path: Path
    spec: ModelSpec
    strategy: str
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)
    step_graph_path: Path | None = None  # <stem>.step.onnx beside path, when one was written


def _candidate(name: str, model: nn.Module, example: torch.Tensor, spec: ModelSpec, opset: int) -> onnx.ModelProto:
    """Build one strategy's graph (``spec``, naming that strategy, stored in it)."""
    state = random_state(model, example.shape[spec.input.batch_axis], seed=7)
    ctx = ExportContext(copy.deepcopy(model), example, state, spec, opset)
    return finalize(STRATEGIES[name].build(ctx), spec)


def _probe(proto: onnx.ModelProto, model: nn.Module, spec: ModelSpec) -> None:
    """The parity probe of a candidate, in a child process: a graph that crashes onnxruntime must not kill us."""
    inputs, outputs = io_names(spec)
    with isolated_runner(proto.SerializeToString(), inputs, outputs) as run:
        probe(model, run, spec)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some exporters put in their messages


def _reason(e: BaseException) -> str:
    """The exception's whole message on one line, without colour codes."""
    return " ".join(_ANSI.sub("", str(e)).split()) or type(e).__name__


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    example_input: torch.Tensor | None = None,
    strategy: str = "auto",
    verify: bool = True,
    step_graph: bool = True,
) -> ExportResult:
    """Export ``model`` to an ONNX file with ``x``/``y`` and ``{state}_in``/``{state}_out``.

    Args:
        model: a contract module (``forward(x, state) -> (y, state)``, ``init_state(b)``).
            It is not modified: a deep copy is exported in eval mode.
        path: the ``.onnx`` file to write (parent folders are created).
        opset: ONNX opset version.
        example_input: batch-first example; default ``model.example_input(2, 5)``.
        strategy: "auto" (trace, proj-native, scan, scan-legacy, layer-scan in that order while
            torch ships its TorchScript-based exporter; else as "dynamo") or one of those, or
            "dynamo": TorchScript-free, torch.export's whole-model graph (native LSTM/GRU/RNN
            ops), else the Scan graph built by torch.export ("scan").
        verify: run the parity probe (batch 3, T 1 and 7) on each candidate graph.
        step_graph: for a streamable model whose kept graph has top-level Scans, also write
            ``<stem>.step.onnx`` (the Scans run once, inlined: faster for one step) when it
            equals the graph at T=1; the spec's ``step_graph`` names it. A step graph that
            fails its check is logged as a warning and not written (the export still succeeds).

    Returns:
        An :class:`ExportResult` (path, spec, strategy, attempts, step_graph_path).

    Raises:
        ExportError: no strategy produced a graph that passes; lists each one's full reason and
            is chained (``__cause__``) to the last one's exception; every attempt's exception
            is in ``attempts`` (the ``rnnx`` logger shows their tracebacks at DEBUG).
        ConfigError: an unknown strategy.

    Example:
        >>> from rnnx.models import build
        >>> result = export_onnx(build("lstm", input_size=4, hidden_size=8), "m.onnx")
        >>> result.strategy, [a.strategy for a in result.attempts]
        ('trace', ['trace'])
    """
    names = _strategy_names(strategy)
    work, example, spec = _contract(model, example_input, opset)
    proto, spec, attempts = _first_passing(names, work, example, spec, opset, verify)
    return _write(proto, path, spec, attempts, work if step_graph else None)


def _contract(
    model: nn.Module, example_input: torch.Tensor | None, opset: int
) -> tuple[nn.Module, torch.Tensor, ModelSpec]:
    """An eval-mode copy of ``model``, its example input and the contract derived from them."""
    work = eval_copy(model)
    example = example_for(work, example_input)
    spec = derive_spec(work, example, opset=opset)
    return work, example, dataclasses.replace(spec, extra={**spec.extra, "producers": producer_versions()})


def _first_passing(
    names: tuple[str, ...], model: nn.Module, example: torch.Tensor, spec: ModelSpec, opset: int, verify: bool
) -> tuple[onnx.ModelProto, ModelSpec, list[Attempt]]:
    """The first strategy's graph that builds and passes its probe: (graph, its spec, every attempt).

    Raises:
        ExportError: none passed; each one's reason, chained to the last one's exception.
    """
    attempts: list[Attempt] = []
    for name in names:
        logger.info(
            "exporting %s to ONNX: trying the %s path%s",
            type(model).__name__,
            name,
            " and its parity probe" if verify else "",
        )
        start = time.perf_counter()
        named = dataclasses.replace(spec, exporter=name)
        try:
            proto = _candidate(name, model, example, named, opset)
            if verify:
                _probe(proto, model, named)
        except Exception as e:  # any failure of one strategy is a reason to try the next
            attempts.append(Attempt(name, False, _reason(e), time.perf_counter() - start, e))
            logger.info("%s path rejected after %.1f s: %s", name, attempts[-1].seconds, attempts[-1].reason)
            logger.debug("%s path traceback", name, exc_info=e)
            continue
        attempts.append(Attempt(name, True, "ok", time.perf_counter() - start))
        return proto, named, attempts
    detail = "; ".join(f"{a.strategy}: {a.reason}" for a in attempts)
    raise ExportError(f"could not export {type(model).__name__} to ONNX: {detail}") from attempts[-1].error


def _strategy_names(strategy: str) -> tuple[str, ...]:
    if strategy == "auto":
        return auto_order()
    if strategy == "dynamo":
        return DYNAMO_ORDER
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: expected one of auto, {', '.join(STRATEGIES)}, got {strategy!r}")
    return (strategy,)


def _write(
    proto: onnx.ModelProto,
    path: str | os.PathLike,
    spec: ModelSpec,
    attempts: list[Attempt],
    step_model: nn.Module | None,
) -> ExportResult:
    """Write the step graph (when ``step_model`` is given and one passes), then the model file."""
    step = None if step_model is None else checked_step_graph(proto, step_model, spec)
    spec, step_path = commit_onnx(proto, path, spec, step)
    return ExportResult(Path(path), spec, spec.exporter, tuple(attempts), step_path)


def checked_step_graph(main: onnx.ModelProto, model: nn.Module, spec: ModelSpec) -> bytes | None:
    """The serialized step graph of ``main``, checked equal to it at T=1; None if none or unequal.

    See :func:`agrees_at_one_step` for the check; a failed check is logged as a WARNING (the
    export goes on without a step graph).
    """
    if not spec.streamable or spec.input.time_axis is None:
        logger.debug("no step graph: the model is not streamable")
        return None
    step = inline_scans(main)
    if step is None:
        return None
    data = step.SerializeToString()
    return data if agrees_at_one_step(main, data, spec, model_probe(model, spec)) else None


def model_probe(model: nn.Module, spec: ModelSpec) -> Probe:
    """One step's input (the model's own kind of input) and a random non-zero state."""
    x = random_input(model, spec, PROBE_BATCH, 1, PROBE_SEED).numpy()
    return x, [s.numpy() for s in random_state(model, PROBE_BATCH, PROBE_SEED)]
