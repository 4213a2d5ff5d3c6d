"""Export a contract module to TorchScript with the state contract in an extra file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch import nn

from rnnx.atomic import atomic_write
from rnnx.exporter.contract import derive_spec, eval_copy, example_for
from rnnx.exporter.onnx_export import Attempt, ExportResult
from rnnx.exporter.parity import probe, random_state
from rnnx.exporter.runners import module_runner
from rnnx.exporter.strategies.base import quiet
from rnnx.spec import METADATA_KEY


def _traced(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    state = random_state(model, example.shape[0], seed=7)
    custom = getattr(model, "trace_for_torchscript", None)  # e.g. rnnx.wrap's cell-style loop
    with quiet(), torch.no_grad():
        if custom is not None:
            return custom(example, state)
        return torch.jit.trace(model, (example, state), check_trace=False)


def export_torchscript(
    model: nn.Module, path: str | os.PathLike, *, example_input: torch.Tensor | None = None
) -> ExportResult:
    """Save ``model`` as TorchScript (``torch.jit.script``; trace only as a checked fallback).

    The file loads with plain ``torch.jit.load`` (rnnx not needed), keeps
    ``forward(x, state)`` and ``init_state``, and carries the spec as the extra file
    ``rnnx.spec``.

    Args:
        model: a contract module (not modified).
        path: the file to write (``.pt``).
        example_input: batch-first example; default ``model.example_input(2, 5)``.

    Returns:
        An :class:`ExportResult` whose strategy is "script" or "trace".

    Raises:
        ExportError: the module can be neither scripted nor traced with parity.

    Example::

        export_torchscript(model, "model.pt").strategy  # -> 'script'
    """
    work = eval_copy(model)
    example = example_for(work, example_input)
    attempts = []
    module: torch.jit.ScriptModule
    try:
        with quiet():
            module, name = torch.jit.script(work), "script"
    except Exception as e:  # scripting errors come in many types
        attempts.append(Attempt("script", False, " ".join(str(e).split()), 0.0, e))
        module, name = _traced(work, example), "trace"
    spec = derive_spec(work, example, exporter=name)
    if name == "trace":
        probe(work, module_runner(module), spec, what="trace fallback parity")
    attempts.append(Attempt(name, True, "ok", 0.0))
    spec = dataclasses.replace(spec, extra={**spec.extra, "producers": {"torch": torch.__version__}})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:  # a reader never sees half a model
        torch.jit.save(module, f, _extra_files={METADATA_KEY: spec.to_json()})
    return ExportResult(out, spec, name, tuple(attempts))
