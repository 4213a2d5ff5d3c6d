"""The one interface every ONNX export strategy implements, and the helpers they share."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import onnx
import torch
from torch import nn

from rnnx.models import decompose
from rnnx.spec import BATCH, TIME, ModelSpec, io_names


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


logger = logging.getLogger(__name__)


def program_proto(program: Any, what: str) -> onnx.ModelProto:
    """The ModelProto of ``torch.onnx.export(dynamo=True)``'s result (an ``ONNXProgram``).

    Raises:
        RuntimeError: torch returned no program.
    """
    if program is None:
        raise RuntimeError(f"{what}: torch.onnx.export(dynamo=True) returned no ONNX program")
    proto: onnx.ModelProto = program.model_proto
    return proto


_log_lock = threading.Lock()
_log_users = 0  # exports in flight that route torch's ONNX log to logging
_original_onnx_log: Callable[..., None] | None = None


def _onnx_log_to_debug(*args: object) -> None:
    """Stands in for ``torch._C._jit_onnx_log`` (which writes to the C++ std::cout)."""
    logger.debug("torch: %s", "".join(str(a) for a in args).rstrip())


@contextlib.contextmanager
def _onnx_log_captured() -> Iterator[None]:
    """Route torch's ONNX exporter log to ``logger.debug`` while an export runs.

    torch enables that log on every export and prints the whole IR graph to the process's
    stdout when a pass fails; the exporter calls it through ``torch._C._jit_onnx_log``, so
    replacing that one function (reference-counted, for concurrent exports) is enough: no
    file descriptor, ``sys.stdout`` or ``sys.stderr`` is touched, so other threads' output
    is never lost.
    """
    global _log_users, _original_onnx_log
    if not hasattr(torch._C, "_jit_onnx_log"):  # a torch without the TorchScript-based exporter
        yield
        return
    with _log_lock:
        if _log_users == 0:
            _original_onnx_log = torch._C._jit_onnx_log
            torch._C._jit_onnx_log = _onnx_log_to_debug
        _log_users += 1
    try:
        yield
    finally:
        with _log_lock:
            _log_users -= 1
            if _log_users == 0 and _original_onnx_log is not None:
                torch._C._jit_onnx_log = _original_onnx_log


class _TorchLogToDebug(logging.Filter):
    """On torch's own log handlers while an export runs: each record goes to ``logger.debug``
    instead (torch.export's chatter, e.g. "torchvision is not installed. Skipping ..." lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "torch" and not record.name.startswith("torch."):
            return True  # another library's record (or rnnx's own) on a handler torch shares
        logger.debug("torch: %s: %s", record.name, record.getMessage())
        return False


_torch_log_filter = _TorchLogToDebug()
_torch_log_users = 0  # exports in flight that hold the filter on torch's handlers


@contextlib.contextmanager
def _torch_log_captured() -> Iterator[None]:
    """Route what torch's loggers print (through the handlers on ``torch`` and ``torch.onnx``,
    which may include the root's) to ``logger.debug`` while an export runs; only records of
    torch's loggers are redirected. Reference-counted like :func:`_onnx_log_captured`; a torch
    record another thread logs meanwhile goes to DEBUG too."""
    global _torch_log_users
    handlers = {h for name in ("torch", "torch.onnx") for h in logging.getLogger(name).handlers}
    with _log_lock:
        if _torch_log_users == 0:
            for h in handlers:
                h.addFilter(_torch_log_filter)
        _torch_log_users += 1
    try:
        yield
    finally:
        with _log_lock:
            _torch_log_users -= 1
            if _torch_log_users == 0:
                for h in handlers:
                    h.removeFilter(_torch_log_filter)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send torch's export chatter (warnings, the ONNX exporter's log, torch's loggers) to DEBUG on ``rnnx``.

    ``-v`` on the CLI shows it. Nothing process-wide is redirected (see ``_onnx_log_captured``).
    """
    with warnings.catch_warnings(record=True) as caught, _onnx_log_captured(), _torch_log_captured():
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                logger.debug("torch: %s: %s", w.category.__name__, w.message)


def legacy_onnx_exporter() -> bool:
    """True while torch ships the TorchScript-based ONNX exporter (``torch.onnx.export(dynamo=False)``).

    PyTorch deprecates it; ``strategy="auto"`` tries the strategies built on it only while
    this holds, detected from what torch provides rather than from its version number.
    """
    try:
        from torch.onnx import utils
    except ImportError:
        return False
    return (
        callable(getattr(utils, "export", None))
        and hasattr(torch._C, "_jit_onnx_log")
        and callable(getattr(torch.jit, "trace", None))
    )


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


def export_traced(
    module: nn.Module,
    args: tuple,
    spec: ModelSpec,
    opset: int,
    names: tuple[list[str], list[str]] | None = None,
    axes: dict[str, dict[int, str]] | None = None,
) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=False)`` into memory, returned as a ModelProto.

    Raises:
        RuntimeError: this torch has no TorchScript-based exporter (the strategy is rejected).
    """
    if not legacy_onnx_exporter():
        raise RuntimeError(
            f"torch {torch.__version__} has no TorchScript-based ONNX exporter (torch.onnx.export(dynamo=False))"
        )
    inputs, outputs = names or io_names(spec)
    buf = io.BytesIO()
    with quiet(), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            buf,  # type: ignore[arg-type]  # torch's stub omits the file object dynamo=False writes to
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes if axes is not None else dynamic_axes(spec),
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


def decomposed(model: nn.Module) -> nn.Module:
    """``rnnx.models.decompose(model)``: fused torch RNN layers -> gate-equation layers."""
    return decompose(model)
