"""One step traced at T=1, wrapped in an ONNX Scan over the time axis.

Covers everything that is streamable: LSTM with ``proj_size`` (after
:func:`rnnx.models.decompose`), ConvLSTM, user cells and Python loops over time.
"""

from __future__ import annotations

import onnx
import torch
from onnx import helper
from torch import nn

from rnnx.exporter.strategies.base import ExportContext, export_traced
from rnnx.spec import BATCH, ModelSpec


class _Step(nn.Module):
    """``forward(x_t, *state) -> (y_t, *new_state)`` on one time slice (time axis removed)."""

    def __init__(self, model: nn.Module, time_axis: int) -> None:
        super().__init__()
        self.model = model
        self.time_axis = time_axis

    def forward(self, x_t: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.model(x_t.unsqueeze(self.time_axis), list(state))  # (B, 1, ...)
        return (y.squeeze(self.time_axis), *new)  # (B, ...)


def _decomposed(model: nn.Module) -> nn.Module:
    from rnnx.models import decompose  # deferred: rnnx.models is only needed here

    return decompose(model)


def _step_graph(ctx: ExportContext) -> onnx.ModelProto:
    spec = ctx.spec
    t = spec.input.time_axis
    x_t = ctx.example.select(t, 0)  # (B, ...) one time slice
    ins = ["step_x"] + [f"step_{s.input}" for s in spec.state]
    outs = ["step_y"] + [f"step_{s.output}" for s in spec.state]
    axes = {"step_x": {0: BATCH}, "step_y": {0: BATCH}}
    for s in spec.state:
        axes[f"step_{s.input}"] = {s.batch_axis: BATCH}
        axes[f"step_{s.output}"] = {s.batch_axis: BATCH}
    return export_traced(_Step(_decomposed(ctx.model), t), (x_t, *ctx.state), spec, ctx.opset,
                         names=(ins, outs), axes=axes)


def _value_info(name: str, dtype: str, shape: tuple) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(__import__("numpy").dtype(dtype))
    return helper.make_tensor_value_info(name, elem, list(shape))


def wrap_in_scan(step: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Turn a one-step graph (x_t, *state) -> (y_t, *state) into a Scan over ``x``'s time axis."""
    g = step.graph
    inits = list(g.initializer)
    del g.initializer[:]  # weights move to the outer graph, referenced from the body
    body = helper.make_graph(list(g.node), "step", [*g.input[1:], g.input[0]],  # states, then x_t
                             [*g.output[1:], g.output[0]])  # new states, then y_t
    scan = helper.make_node(
        "Scan", [s.input for s in spec.state] + [spec.input.name],
        [s.output for s in spec.state] + [spec.output.name], name="time_scan", body=body,
        num_scan_inputs=1, scan_input_axes=[spec.input.time_axis],
        scan_output_axes=[spec.output.time_axis])
    inputs = [_value_info(spec.input.name, spec.input.dtype, spec.input.shape)]
    inputs += [_value_info(s.input, s.dtype, s.shape) for s in spec.state]
    outputs = [_value_info(spec.output.name, spec.output.dtype, spec.output.shape)]
    outputs += [_value_info(s.output, s.dtype, s.shape) for s in spec.state]
    main = helper.make_graph([scan], "rnnx_scan", inputs, outputs, initializer=inits)
    return helper.make_model(main, opset_imports=step.opset_import, ir_version=step.ir_version,
                             producer_name=step.producer_name,
                             producer_version=step.producer_version)


class ScanStrategy:
    """Scan over a T=1 trace of the decomposed model; streamable models only."""

    name = "scan"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        if not ctx.spec.streamable:
            raise ValueError("model is not streamable (bidirectional): a scan over one step "
                             "cannot see future steps")
        return wrap_in_scan(_step_graph(ctx), ctx.spec)
