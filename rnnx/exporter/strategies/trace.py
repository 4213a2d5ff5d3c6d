"""Trace the full-sequence forward: native ONNX RNN/LSTM/GRU ops, the fastest graph."""

from __future__ import annotations

import onnx
from torch import nn

from rnnx.exporter.strategies.base import ExportContext, Flat, export_traced


def refuse_relu_rnn(model: nn.Module) -> None:
    """Raise for an ``nn.RNN(nonlinearity="relu")``: its native op is not portable.

    The ONNX ``RNN`` op carries the activation as an attribute, and tract ignores it
    (it always applies tanh: silently wrong numbers); the scan graphs spell relu out.

    Raises:
        ValueError: the model contains a relu nn.RNN.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.RNN) and module.nonlinearity == "relu":
            raise ValueError(
                f"{name or 'model'} is nn.RNN(nonlinearity='relu'): the native ONNX "
                f"RNN op's Relu activation is ignored by some runtimes (tract); "
                f"a scan graph is portable"
            )


class TraceStrategy:
    """``torch.onnx.export(dynamo=False)`` of the whole model with dynamic batch and time.

    Works for nn.RNN (tanh)/GRU/LSTM stacks (uni- and bidirectional); torch refuses LSTM
    with ``proj_size``, relu RNNs are refused for portability (:func:`refuse_relu_rnn`),
    and Python loops over time get unrolled to the example length (the parity probe at
    other lengths rejects those).
    """

    name = "trace"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        refuse_relu_rnn(ctx.model)
        return export_traced(Flat(ctx.model), (ctx.example, *ctx.state), ctx.spec, ctx.opset)
