"""Export a contract module to ONNX with explicit state inputs/outputs.

Several strategies can build the graph (see :mod:`rnnx.exporter.strategies`);
``strategy="auto"`` tries them in order (trace, scan, script) and keeps the first
graph that passes the structural checks and a parity probe at sizes other than the
export example.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch
from torch import nn

from rnnx.errors import ExportError
from rnnx.exporter.contract import derive_spec, eval_copy, example_for
from rnnx.exporter.graph import finalize, producer_versions
from rnnx.exporter.parity import random_state, resolve_tolerance, run_cases
from rnnx.exporter.runners import onnx_runner
from rnnx.exporter.strategies import AUTO_ORDER, STRATEGIES, ExportContext
from rnnx.spec import ModelSpec

PROBE_BATCHES = (3,)  # batch sizes of the parity probe (the example is batch 2)
PROBE_STEPS = (1, 7)  # sequence lengths of the probe (the example is 5 steps)


@dataclass(frozen=True)
class Attempt:
    """One strategy tried during an export."""

    strategy: str  # strategy name
    ok: bool  # True if its graph was kept
    reason: str  # "ok" or why it was rejected
    seconds: float  # time spent building and checking


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


def _probe(model: nn.Module, proto: onnx.ModelProto, spec: ModelSpec) -> None:
    """Parity at batch/T other than the example's, full sequence and streaming."""
    tol, _ = resolve_tolerance(spec.kind, None, None)
    run = onnx_runner(proto.SerializeToString(), spec)
    notes: list[str] = []
    rows = run_cases(model, run, spec, tol, PROBE_BATCHES, PROBE_STEPS, seed=123, streaming=True,
                     notes=notes)
    bad = [r for r in rows if not r.ok]
    if notes:
        raise ExportError(f"parity probe failed: {notes[0]}")
    if bad:
        worst = max(bad, key=lambda r: r.score)
        raise ExportError(f"parity probe failed: {worst.tensor} in {worst.label()} differs by "
                          f"{worst.max_abs:.3g} (atol {worst.atol:g}, rtol {worst.rtol:g})")


def _attempt(name: str, model: nn.Module, example: torch.Tensor, spec: ModelSpec,
             opset: int, verify: bool) -> onnx.ModelProto:
    spec = dataclasses.replace(spec, exporter=name)
    state = random_state(model, example.shape[spec.input.batch_axis], seed=7)
    ctx = ExportContext(copy.deepcopy(model), example, state, spec, opset)
    proto = finalize(STRATEGIES[name].build(ctx), spec)
    if verify:
        _probe(model, proto, spec)
    return proto


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes some exporters put in their messages


def _reason(e: BaseException) -> str:
    text = " ".join(_ANSI.sub("", str(e)).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


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
        strategy: "auto" (trace, then scan, then script) or one of trace, scan, script, dynamo.
        verify: run the parity probe (batch 3, T 1 and 7) on each candidate graph.

    Returns:
        An :class:`ExportResult` (path, spec, strategy, attempts).

    Raises:
        ExportError: no strategy produced a graph that passes; lists each one's reason.
        ConfigError: an unknown strategy.

    Example:
        >>> from rnnx.models import build                     # doctest: +SKIP
        >>> result = export_onnx(build("lstm", input_size=4, hidden_size=8), "m.onnx")
        >>> result.strategy                                   # doctest: +SKIP
        'trace'
    """
    names = _strategy_names(strategy)
    work = eval_copy(model)
    example = example_for(work, example_input)
    spec = derive_spec(work, example, opset=opset)
    spec = dataclasses.replace(spec, extra={"producers": producer_versions()})
    attempts: list[Attempt] = []
    for name in names:
        start = time.perf_counter()
        try:
            proto = _attempt(name, work, example, spec, opset, verify)
        except Exception as e:  # any failure of one strategy is a reason to try the next
            attempts.append(Attempt(name, False, _reason(e), time.perf_counter() - start))
            continue
        attempts.append(Attempt(name, True, "ok", time.perf_counter() - start))
        return _write(proto, path, name, spec, attempts)
    detail = "; ".join(f"{a.strategy}: {a.reason}" for a in attempts)
    raise ExportError(f"could not export {type(model).__name__} to ONNX: {detail}")


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
    onnx.save(proto, os.fspath(out))
    return ExportResult(out, dataclasses.replace(spec, exporter=name), name, tuple(attempts))
