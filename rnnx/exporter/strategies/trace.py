"""Trace the full-sequence forward: native ONNX RNN/LSTM/GRU ops, the fastest graph."""

from __future__ import annotations

import onnx

from rnnx.exporter.strategies.base import ExportContext, Flat, export_traced


class TraceStrategy:
    """``torch.onnx.export(dynamo=False)`` of the whole model with dynamic batch and time.

    Works for nn.RNN/GRU/LSTM stacks (uni- and bidirectional); torch refuses LSTM with
    ``proj_size``, and Python loops over time get unrolled to the example length (the
    parity probe at other lengths rejects those).
    """

    name = "trace"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        return export_traced(Flat(ctx.model), (ctx.example, *ctx.state), ctx.spec, ctx.opset)
