"""The torch.export-based exporter of the whole model: native LSTM/GRU/RNN ops, no TorchScript.

``torch.onnx.export(dynamo=True)`` translates ``nn.LSTM``/``nn.GRU``/``nn.RNN`` into the native
ONNX ops, which run at any batch and time in onnxruntime; but its translation declares some
outputs with the example's sizes (``y``'s time axis after an ``nn.LSTM``). Those declarations
are only hints: they are dropped and inferred again from the symbolic inputs
(:func:`reinfer_output_shapes`), so the structural check in :func:`rnnx.onnx_tools.graph.finalize`
still refuses a graph that really computes at a fixed size.

Tried by ``strategy="auto"`` only where torch no longer ships its TorchScript-based exporter
(:func:`rnnx.exporter.strategies.base.legacy_onnx_exporter`).
"""

from __future__ import annotations

from typing import Any

import onnx
import torch

from rnnx.exporter.strategies.base import ExportContext, Flat, program_proto, quiet
from rnnx.onnx_tools.graph import to_opset
from rnnx.spec import BATCH, TIME, ModelSpec, io_names


def reset_rnn_caches() -> None:
    """Forget the RNN kernels earlier exports left cached.

    torch.onnx's exporter swaps in while-loop decompositions of ``aten.lstm``/``aten.gru`` for
    dynamic shapes (``torch.export._patches``) by editing ``py_kernels`` without clearing the
    ops' dispatch caches: the next export in the process then unrolls the RNN over the
    example's steps and freezes the time axis. Clearing the caches first avoids that.
    """
    torch._dynamo.reset()
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            cache = getattr(getattr(packet, overload), "_dispatch_cache", None)
            if cache is not None:
                cache.clear()


def reinfer_output_shapes(model: onnx.ModelProto) -> None:
    """Replace the graph outputs' declared shapes (and every ``value_info``) by ONNX shape inference.

    A dim the inference cannot tell is left unknown (``finalize`` then writes the contract's
    name); a dim it computes from a constant stays a number, so a truly frozen axis is still
    refused by ``check_io``.
    """
    graph = model.graph
    del graph.value_info[:]
    for out in graph.output:
        out.type.tensor_type.ClearField("shape")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    shapes = {o.name: o.type.tensor_type for o in inferred.graph.output}
    for out in graph.output:
        if shapes[out.name].HasField("shape"):
            out.type.tensor_type.shape.CopyFrom(shapes[out.name].shape)


def export_whole(ctx: ExportContext) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=True)`` of ``Flat(model)`` with the contract's dynamic axes."""
    spec = ctx.spec
    return export_dynamo(Flat(ctx.model), (ctx.example, *ctx.state), io_names(spec), model_axes(spec), ctx.opset)


def model_axes(spec: ModelSpec) -> dict[str, dict[int, str]]:
    """The whole model's dynamic input axes: the data's batch and time, each state's batch."""
    data = {spec.input.batch_axis: BATCH}
    if spec.input.time_axis is not None:
        data[spec.input.time_axis] = TIME
    return {spec.input.name: data, **{s.input: {s.batch_axis: BATCH} for s in spec.state}}


def export_dynamo(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[list[str], list[str]],
    axes: dict[str, dict[int, str]],
    opset: int,
) -> onnx.ModelProto:
    """``torch.onnx.export(dynamo=True)`` of ``module(*args)`` into memory: the TorchScript-free
    counterpart of :func:`~rnnx.exporter.strategies.base.export_traced` (same ``names`` and ``axes``).

    :func:`export_program`, then the output shapes re-inferred (:func:`reinfer_output_shapes`) and
    the graph relabelled to ``opset`` where it was exported at 18.
    """
    proto = export_program(module, args, names, axes, opset)
    reinfer_output_shapes(proto)
    return to_opset(proto, opset)


def dynamic_shapes(
    module: torch.nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], axes: dict[str, dict[int, str]]
) -> Any:
    """torch.export's ``dynamic_shapes`` for ``module(*args)``, the inputs named ``inputs``.

    ``axes`` maps an input name to ``{axis: dim name}``; inputs sharing a dim name share one
    ``torch.export.Dim``.
    """
    dims: dict[str, torch.export.Dim] = {}
    shapes = torch.export.ShapesCollection()
    for name, tensor in zip(inputs, args, strict=True):
        if axes.get(name):
            shapes[tensor] = {a: dims.setdefault(d, torch.export.Dim(d)) for a, d in axes[name].items()}
    return shapes.dynamic_shapes(module, args)


def export_program(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[list[str], list[str]],
    axes: dict[str, dict[int, str]],
    opset: int,
    translations: dict | None = None,
) -> onnx.ModelProto:
    """The graph ``torch.onnx.export(dynamo=True)`` writes for ``module(*args)``, as it wrote it
    (opset 18 at least, its declared output shapes).

    ``axes``: see :func:`dynamic_shapes`. ``translations``: torch's ``custom_translation_table`` (op -> ONNX).
    """
    shapes = dynamic_shapes(module, args, names[0], axes)
    reset_rnn_caches()
    with quiet(), torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=max(opset, 18),
            input_names=names[0],
            output_names=names[1],
            dynamic_shapes=shapes,
            verbose=False,
            custom_translation_table=translations,
        )
    return program_proto(program, type(module).__name__)


def refuse_without_native_layers(model: torch.nn.Module) -> None:
    """Raise, before the (slow) export, for a model whose recurrence has no native form here.

    torch.export keeps ``nn.LSTM``/``nn.GRU`` as native ops with a dynamic time axis (through
    its while-loop decompositions); it unrolls ``nn.RNN`` over the example's steps, has no
    native op for a projected LSTM, and a model without torch RNN layers (ConvLSTM, a user's
    cell) loops in Python. Those go to the Scan graph at once instead of after a failed export.

    Raises:
        ValueError: naming the layer (or the absence of one).
    """
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.RNNBase)]
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no nn.LSTM/nn.GRU layer: no native op to export "
            f"(its loop over time becomes a Scan)"
        )
    for name, m in layers:
        if isinstance(m, torch.nn.RNN):
            raise ValueError(f"{name}: torch.export unrolls nn.RNN over the example's steps (no dynamic-time form)")
        if isinstance(m, torch.nn.LSTM) and m.proj_size:
            raise ValueError(f"{name}: an LSTM with proj_size has no native ONNX op")


class DynamoStrategy:
    """``torch.onnx.export(dynamo=True)`` of the whole model with dynamic batch and time."""

    name = "dynamo"
    auto = False  # auto tries it only without the legacy exporter (strategies.auto_order)

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        refuse_without_native_layers(ctx.model)
        return export_whole(ctx)  # export_dynamo relabels it to ctx.opset
