"""Script the decomposed model so time loops survive as ONNX Loop nodes.

For models that need decomposition but cannot be scanned one step at a time:
bidirectional LSTM with ``proj_size``. The scripted model is called from a flat
traced wrapper, so its loops are kept while the signature stays flat.
"""

from __future__ import annotations

import onnx
import torch

from rnnx.exporter.strategies.base import ExportContext, Flat, export_traced, quiet
from rnnx.exporter.strategies.scan import _decomposed


class ScriptStrategy:
    """``torch.jit.script(decompose(model))`` exported with ``dynamo=False`` (ONNX Loop)."""

    name = "script"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        args = (ctx.example, *ctx.state)
        with quiet(), torch.no_grad():
            scripted = torch.jit.script(_decomposed(ctx.model))
            flat = torch.jit.trace(Flat(scripted), args, check_trace=False)  # loops stay scripted
        return export_traced(flat, args, ctx.spec, ctx.opset)
