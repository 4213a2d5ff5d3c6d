"""Structural checks and clean-up of a freshly built ONNX graph.

Every candidate graph goes through :func:`finalize`: dynamic axes checked, I/O shapes
set from the spec, unused initializers dropped, the spec stored in the metadata, and
``onnx.checker`` run with ``full_check``.
"""

from __future__ import annotations

from typing import Iterable

import onnx
import torch
from onnx import helper

from rnnx.errors import ExportError
from rnnx.spec import METADATA_KEY, ModelSpec


def _io_axes(spec: ModelSpec) -> dict[str, tuple[tuple, tuple[int, ...]]]:
    """name -> (spec shape, axes that must be symbolic)."""
    data_axes = tuple(a for a in (spec.input.batch_axis, spec.input.time_axis) if a is not None)
    out = {spec.input.name: (spec.input.shape, data_axes),
           spec.output.name: (spec.output.shape, data_axes)}
    for s in spec.state:
        out[s.input] = (s.shape, (s.batch_axis,))
        out[s.output] = (s.shape, (s.batch_axis,))
    return out


def check_io(graph: onnx.GraphProto, spec: ModelSpec) -> None:
    """Names match the spec, and no batch/time axis is fixed to a number.

    Raises:
        ExportError: a missing name, a wrong rank, or a fixed dynamic axis.
    """
    want = _io_axes(spec)
    have = {v.name: v for v in [*graph.input, *graph.output]}
    for name, (shape, axes) in want.items():
        if name not in have:
            raise ExportError(f"graph has no input/output {name!r} (has {sorted(have)})")
        dims = have[name].type.tensor_type.shape.dim
        if dims and len(dims) != len(shape):
            raise ExportError(f"{name}: expected rank {len(shape)} {list(shape)}, got {len(dims)}")
        for a in axes:
            if dims and dims[a].HasField("dim_value"):
                raise ExportError(f"{name}: axis {a} ({shape[a]}) is fixed to {dims[a].dim_value} "
                                  f"in the graph; it must stay symbolic")


def write_shape(value: onnx.ValueInfoProto, shape: tuple) -> None:
    """Set a graph input/output's shape: strings become symbolic dims, ints fixed ones."""
    value.type.tensor_type.shape.Clear()
    for d in shape:
        dim = value.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def set_io_shapes(graph: onnx.GraphProto, spec: ModelSpec) -> None:
    """Write the spec's shapes (symbolic batch/time, concrete features) on graph I/O."""
    want = _io_axes(spec)
    for v in [*graph.input, *graph.output]:
        if v.name in want:
            write_shape(v, want[v.name][0])


def _used_names(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every tensor name a node reads, subgraphs (Scan/Loop/If bodies) included."""
    used: set[str] = set()
    for node in nodes:
        used.update(node.input)
        for attr in node.attribute:
            for g in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                used |= _used_names(g.node)
                used.update(o.name for o in g.output)
    return used


def remove_unused_initializers(graph: onnx.GraphProto) -> int:
    """Drop initializers no node reads; returns how many were removed."""
    used = _used_names(graph.node) | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    removed = len(graph.initializer) - len(keep)
    if removed:
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def unused_initializers(graph: onnx.GraphProto) -> list[str]:
    """Names of initializers that no node reads."""
    used = _used_names(graph.node) | {o.name for o in graph.output}
    return [t.name for t in graph.initializer if t.name not in used]


def producer_versions() -> dict[str, str]:
    """Versions of the tools that produced a file (stored in the spec's ``extra``)."""
    import rnnx

    return {"torch": torch.__version__, "onnx": onnx.__version__, "rnnx": rnnx.__version__}


def store_spec(model: onnx.ModelProto, spec: ModelSpec) -> None:
    """Make ``spec`` the model's only metadata (the ``rnnx.spec`` key), in place."""
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})


def finalize(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Check and clean a candidate graph in place, store the spec, run the full checker.

    Raises:
        ExportError: dynamic axes fixed, names missing, or the checker rejects the graph.
    """
    graph = model.graph
    check_io(graph, spec)
    set_io_shapes(graph, spec)
    remove_unused_initializers(graph)
    store_spec(model, spec)
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"onnx.checker rejected the graph: {first}") from None
    return model

