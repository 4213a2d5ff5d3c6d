"""Scan graphs for streamable models: per layer where rnnx knows the cells, else one step.

Covers everything that is streamable: LSTM with ``proj_size`` (after
:func:`rnnx.models.decompose`), relu RNNs, ConvLSTM, user cells and Python loops over time.

``scan`` first tries :func:`~rnnx.exporter.strategies.layer_scan.layered_graph`: every
recurrent layer (torch's RNN/LSTM/GRU after decomposition, rnnx's ConvLSTM layers) becomes
its input projection over all steps plus one lean Scan (:mod:`rnnx.exporter.cell_graphs`),
the rest of the model is exported by torch's dynamo exporter. A model without such layers
(a user's own cell, a Python loop over time) gets the general graph below: its whole step
exported without a time axis, wrapped in one Scan.

The graph is portable: ``x`` is transposed to time-major outside the Scan (so the
Scan runs over axis 0, the only axis ``onnx.reference`` and some runtimes accept),
and the step's weights stay inside the Scan body as body initializers (they are used
only there, and onnxruntime's quantizer quantizes subgraph weights only in place).

Two builders of the one-step graph:

- ``scan``: ``torch.onnx.export(dynamo=True)`` (torch.export). One step has no time
  axis to freeze, so the non-deprecated exporter handles it; auto prefers it.
- ``scan-legacy``: the TorchScript-based ``torch.onnx.export(dynamo=False)``, for the
  models torch.export cannot capture (always the one-step graph).
"""

from __future__ import annotations

import logging

import onnx
import torch
from onnx import helper
from torch import nn

from rnnx.exporter.strategies.base import ExportContext, decomposed, export_traced
from rnnx.exporter.strategies.dynamo import export_dynamo
from rnnx.exporter.strategies.layer_scan import has_layers, layered_graph
from rnnx.spec import BATCH, IOSpec, ModelSpec

logger = logging.getLogger(__name__)

X_TIME_MAJOR = "x_time_major"  # outer-graph name of x with time moved to axis 0
Y_TIME_MAJOR = "y_time_major"  # outer-graph name of the Scan's stacked y (time first)


class StepModule(nn.Module):
    """``forward(x_t, *state) -> (y_t, *new_state)`` on one time slice (time axis removed)."""

    def __init__(self, model: nn.Module, time_axis: int) -> None:
        super().__init__()
        self.model = model
        self.time_axis = time_axis

    def forward(self, x_t: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.model(x_t.unsqueeze(self.time_axis), list(state))  # (B, 1, ...)
        return (y.squeeze(self.time_axis), *new)  # (B, ...)


def _step_names(spec: ModelSpec) -> tuple[list[str], list[str]]:
    return (["step_x"] + [f"step_{s.input}" for s in spec.state], ["step_y"] + [f"step_{s.output}" for s in spec.state])


def _time_axis(io: IOSpec) -> int:
    """``io``'s time axis; a scan runs over it, so data without one is refused (ValueError)."""
    if io.time_axis is None:
        raise ValueError(f"{io.name}: a scan runs over the time axis; expected one in shape {io.shape}, got none")
    return io.time_axis


def _step_args(ctx: ExportContext) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    t = _time_axis(ctx.spec.input)
    x_t = ctx.example.select(t, 0)  # (B, ...) one time slice
    return StepModule(decomposed(ctx.model), t), (x_t, *ctx.state)


def _step_axes(spec: ModelSpec) -> tuple[tuple[list[str], list[str]], dict[str, dict[int, str]]]:
    """The step graph's (input names, output names) and dynamic axes: the batch of x_t, y_t and each state."""
    ins, outs = _step_names(spec)
    axes = {ins[0]: {0: BATCH}, outs[0]: {0: BATCH}}
    for s, i, o in zip(spec.state, ins[1:], outs[1:]):
        axes[i] = {s.batch_axis: BATCH}
        axes[o] = {s.batch_axis: BATCH}
    return (ins, outs), axes


def step_graph_legacy(ctx: ExportContext) -> onnx.ModelProto:
    """The one-step graph through ``torch.onnx.export(dynamo=False)``."""
    names, axes = _step_axes(ctx.spec)
    step, args = _step_args(ctx)
    return export_traced(step, args, ctx.spec, ctx.opset, names=names, axes=axes)


def step_graph_dynamo(ctx: ExportContext) -> onnx.ModelProto:
    """The one-step graph through ``torch.onnx.export(dynamo=True)`` (torch.export)."""
    names, axes = _step_axes(ctx.spec)
    step, args = _step_args(ctx)
    return export_dynamo(step, args, names, axes, ctx.opset)


def _value_info(name: str, dtype: str, shape: tuple) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(__import__("numpy").dtype(dtype))
    return helper.make_tensor_value_info(name, elem, list(shape))


def time_major_perm(rank: int, time_axis: int) -> list[int]:
    """Transpose permutation that moves ``time_axis`` to the front, the rest in order."""
    return [time_axis] + [a for a in range(rank) if a != time_axis]


def inverse_perm(perm: list[int]) -> list[int]:
    """The permutation that undoes ``perm``."""
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return out


def wrap_in_scan(step: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Turn a one-step graph (x_t, *state) -> (y_t, *state) into a Scan over ``x``'s time axis.

    ``x`` is transposed to time-major before the Scan and ``y`` back after it; the step's
    initializers stay in the body (body-only weights live where they are used).
    """
    g = step.graph
    body = helper.make_graph(
        list(g.node),
        "step",
        [*g.input[1:], g.input[0]],  # states, then x_t
        [*g.output[1:], g.output[0]],  # new states, then y_t
        initializer=list(g.initializer),
        value_info=list(g.value_info),
    )
    perm_x = time_major_perm(len(spec.input.shape), _time_axis(spec.input))
    perm_y = inverse_perm(time_major_perm(len(spec.output.shape), _time_axis(spec.output)))
    nodes = [
        helper.make_node("Transpose", [spec.input.name], [X_TIME_MAJOR], name="x_to_time_major", perm=perm_x),
        helper.make_node(
            "Scan",
            [s.input for s in spec.state] + [X_TIME_MAJOR],
            [s.output for s in spec.state] + [Y_TIME_MAJOR],
            name="time_scan",
            body=body,
            num_scan_inputs=1,
        ),
        helper.make_node("Transpose", [Y_TIME_MAJOR], [spec.output.name], name="y_to_batch_major", perm=perm_y),
    ]
    inputs = [_value_info(spec.input.name, spec.input.dtype, spec.input.shape)]
    inputs += [_value_info(s.input, s.dtype, s.shape) for s in spec.state]
    outputs = [_value_info(spec.output.name, spec.output.dtype, spec.output.shape)]
    outputs += [_value_info(s.output, s.dtype, s.shape) for s in spec.state]
    main = helper.make_graph(nodes, "rnnx_scan", inputs, outputs)
    model = helper.make_model(
        main,
        opset_imports=step.opset_import,
        ir_version=step.ir_version,
        producer_name=step.producer_name,
        producer_version=step.producer_version,
    )
    model.functions.extend(step.functions)
    return model


def _require_streamable(spec: ModelSpec) -> None:
    if not spec.streamable:
        raise ValueError("model is not streamable (bidirectional): a scan over one step cannot see future steps")


class ScanStrategy:
    """Scans built by torch.export (dynamo): one lean Scan per layer where it can, else one step.

    Models whose recurrence is in torch RNN/LSTM/GRU (or rnnx) layers or ConvLSTM layers get
    :func:`~rnnx.exporter.strategies.layer_scan.layered_graph` (input projections hoisted out of
    the time loop, a lean body per layer); any other model (a user's own cell, a Python loop
    over time), or one torch.export cannot capture that way, gets one Scan over its whole step.
    """

    name = "scan"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        _require_streamable(ctx.spec)
        if has_layers(ctx.model):
            try:
                return layered_graph(ctx, dynamo=True)
            except Exception as e:  # noqa: BLE001 (any failure: the general graph still may pass)
                logger.info("scan: per-layer scans failed (%s); one Scan over the whole step", e)
                logger.debug("scan: per-layer scans traceback", exc_info=e)
        return wrap_in_scan(step_graph_dynamo(ctx), ctx.spec)


class LegacyScanStrategy:
    """Scan over one step of the decomposed model, built by the TorchScript-based exporter."""

    name = "scan-legacy"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        _require_streamable(ctx.spec)
        return wrap_in_scan(step_graph_legacy(ctx), ctx.spec)
