"""The torch.export-based exporter (opt-in: it fixes LSTM's time axis to the example size)."""

from __future__ import annotations

import onnx
import torch

from rnnx.exporter.strategies.base import ExportContext, Flat, io_names, quiet


class DynamoStrategy:
    """``torch.onnx.export(dynamo=True)`` with dynamic batch and time; never tried by auto."""

    name = "dynamo"
    auto = False

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        spec = ctx.spec
        batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
        shapes = [{spec.input.batch_axis: batch, spec.input.time_axis: time}]
        shapes += [{s.batch_axis: batch} for s in spec.state]
        inputs, outputs = io_names(spec)
        with quiet():
            program = torch.onnx.export(Flat(ctx.model), (ctx.example, *ctx.state), dynamo=True,
                                        opset_version=ctx.opset, input_names=inputs,
                                        output_names=outputs, dynamic_shapes=tuple(shapes),
                                        verbose=False)
        return program.model_proto
