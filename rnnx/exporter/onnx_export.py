"""Export a contract module to ONNX with explicit state inputs/outputs.

Several strategies can build the graph (see :mod:`rnnx.exporter.strategies`);
``strategy="auto"`` tries them in order (trace, proj-native, scan, scan-legacy, layer-scan)
and keeps the first graph that passes the structural checks and a parity probe at sizes other than the
export example. Each candidate is probed in a child process
(:mod:`rnnx.exporter.ort_worker`): a graph that crashes onnxruntime is a rejected
candidate, not a dead process.
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

from rnnx.atomic import write_bytes_atomic
from rnnx.errors import ExportError
from rnnx.exporter.contract import derive_spec, eval_copy, example_for
from rnnx.exporter.graph import finalize, producer_versions
from rnnx.exporter.ort_worker import isolated_runner
from rnnx.exporter.parity import probe, random_state
from rnnx.exporter.strategies import AUTO_ORDER, STRATEGIES, ExportContext
from rnnx.exporter.strategies.base import io_names
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
    """

    path: Path
    spec: ModelSpec
    strategy: str
    attempts: tuple[Attempt, ...] = field(default_factory=tuple)


def _attempt(name: str, model: nn.Module, example: torch.Tensor, spec: ModelSpec,
             opset: int, verify: bool) -> onnx.ModelProto:
    spec = dataclasses.replace(spec, exporter=name)
    state = random_state(model, example.shape[spec.input.batch_axis], seed=7)
    ctx = ExportContext(copy.deepcopy(model), example, state, spec, opset)
    proto = finalize(STRATEGIES[name].build(ctx), spec)
    if verify:  # in a child process: a graph that crashes onnxruntime must not kill us
        inputs, outputs = io_names(spec)
        with isolated_runner(proto.SerializeToString(), inputs, outputs) as run:
            probe(model, run, spec)
    return proto


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some exporters put in their messages


def _reason(e: BaseException) -> str:
    """The exception's whole message on one line, without colour codes."""
    return " ".join(_ANSI.sub("", str(e)).split()) or type(e).__name__


def export_onnx(model: nn.Module, path: str | os.PathLike, *, opset: int = 17,
                example_input: torch.Tensor | None = None, strategy: str = "auto",
                verify: bool = True) -> ExportResult:
    """Export ``model`` to an ONNX file with ``x``/``y`` and ``{state}_in``/``{state}_out``.

    Args:
        model: a contract module (``forward(x, state) -> (y, state)``, ``init_state(b)``).
            It is not modified: a deep copy is exported in eval mode.
        path: the ``.onnx`` file to write (parent folders are created).
        opset: ONNX opset version.
        example_input: batch-first example; default ``model.example_input(2, 5)``.
        strategy: "auto" (trace, proj-native, scan, scan-legacy, layer-scan in that order) or one of
            those, or "dynamo".
        verify: run the parity probe (batch 3, T 1 and 7) on each candidate graph.

    Returns:
        An :class:`ExportResult` (path, spec, strategy, attempts).

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
    work = eval_copy(model)
    example = example_for(work, example_input)
    spec = derive_spec(work, example, opset=opset)
    spec = dataclasses.replace(spec, extra={"producers": producer_versions()})
    attempts: list[Attempt] = []
    for name in names:
        logger.info("exporting %s to ONNX: trying the %s path%s", type(model).__name__, name,
                    " and its parity probe" if verify else "")
        start = time.perf_counter()
        try:
            proto = _attempt(name, work, example, spec, opset, verify)
        except Exception as e:  # any failure of one strategy is a reason to try the next
            attempts.append(Attempt(name, False, _reason(e), time.perf_counter() - start, e))
            logger.info("%s path rejected after %.1f s: %s", name, attempts[-1].seconds, attempts[-1].reason)
            logger.debug("%s path traceback", name, exc_info=e)
            continue
        attempts.append(Attempt(name, True, "ok", time.perf_counter() - start))
        return _write(proto, path, name, spec, attempts)
    detail = "; ".join(f"{a.strategy}: {a.reason}" for a in attempts)
    raise ExportError(f"could not export {type(model).__name__} to ONNX: {detail}") from attempts[-1].error


def _strategy_names(strategy: str) -> tuple[str, ...]:
    from rnnx.errors import ConfigError

    if strategy == "auto":
        return AUTO_ORDER
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: expected one of auto, {', '.join(STRATEGIES)}, "
                          f"got {strategy!r}")
    return (strategy,)


def _write(proto: onnx.ModelProto, path: str | os.PathLike, name: str, spec: ModelSpec,
           attempts: list[Attempt]) -> ExportResult:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, proto.SerializeToString())  # a reader never sees half a model
    return ExportResult(out, dataclasses.replace(spec, exporter=name), name, tuple(attempts))
