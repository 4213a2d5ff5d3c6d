"""Batch and time axes of an ONNX graph: find them on the data input, make them dynamic.

Used by :func:`rnnx.onnx_tools.stateful.make_stateful`. Exported graphs often freeze the
example's batch and time sizes (fixed input dims, ``Reshape`` shape constants); this module
finds which data-input axes are batch and time (by following the input to the first
recurrent node with ONNX shape inference) and computes frozen ``Reshape`` shapes from the
tensor at run time.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnx.errors import StatefulError
from rnnx.onnx_tools.rnn_nodes import GraphIndex, RecurrentNode


def fresh_name(graph: onnx.GraphProto, name: str) -> str:
    taken = {v.name for v in [*graph.input, *graph.output]} | {o for n in graph.node for o in n.output}
    while name in taken:
        name += "_"
    return name


def dims(v: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in v.type.tensor_type.shape.dim]


def set_dims(v: onnx.ValueInfoProto, names: dict[int, str]) -> None:
    for i, d in enumerate(v.type.tensor_type.shape.dim):
        if i in names:
            d.Clear()
            d.dim_param = names[i]


def elem_dtype_name(elem_type: int) -> str:
    """numpy dtype name of an ONNX element type (``TensorProto.FLOAT`` -> ``"float32"``).

    Raises:
        KeyError: not a tensor element type numpy has.
    """
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name


def np_dtype_name(v: onnx.ValueInfoProto) -> str:
    return elem_dtype_name(v.type.tensor_type.elem_type)


def default_opset(model: onnx.ModelProto) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def inferred_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """name -> dims (ints, symbol names or None) after ONNX shape inference."""
    m = onnx.shape_inference.infer_shapes(model, data_prop=True)
    vals = [*m.graph.value_info, *m.graph.input, *m.graph.output]
    return {v.name: dims(v) for v in vals if v.type.tensor_type.HasField("shape")}


def data_axes(
    model: onnx.ModelProto,
    x: onnx.ValueInfoProto,
    first: RecurrentNode,
    batch_axis: int | None,
    time_axis: int | None,
    src: Any,
) -> tuple[int, int]:
    """(batch axis, time axis) of the data input: given, or followed to the first recurrent node."""
    rank = len(x.type.tensor_type.shape.dim)
    if batch_axis is not None or time_axis is not None:
        if batch_axis is None or time_axis is None:
            raise StatefulError("batch_axis and time_axis: give both or neither")
        for name, a in (("batch_axis", batch_axis), ("time_axis", time_axis)):
            if not 0 <= a < rank:
                raise StatefulError(f"{name}: expected an axis of {x.name} (rank {rank}), got {a}")
        if batch_axis == time_axis:
            raise StatefulError(f"batch_axis and time_axis: expected two different axes, got {batch_axis} twice")
        return batch_axis, time_axis
    t_at, b_at = (0, 1) if first.layout == 0 else (1, 0)  # axes of the node's X
    probe = copy.deepcopy(model)
    v = next(i for i in probe.graph.input if i.name == x.name)
    set_dims(v, {i: f"__axis{i}" for i in range(rank)})
    del probe.graph.value_info[:]
    x_dims = inferred_shapes(probe).get(first.node.input[0], [])
    if len(x_dims) == 3:
        t, b = x_dims[t_at], x_dims[b_at]
        if isinstance(t, str) and isinstance(b, str) and t.startswith("__axis") and b.startswith("__axis"):
            return int(b[6:]), int(t[6:])
    static = inferred_shapes(model).get(first.node.input[0], [])  # fall back to matching sizes
    sizes = dims(x)
    if len(static) == 3 and isinstance(static[t_at], int) and isinstance(static[b_at], int):
        ts = [i for i, d in enumerate(sizes) if d == static[t_at]]
        bs = [i for i, d in enumerate(sizes) if d == static[b_at] and i not in ts]
        if len(ts) == 1 and len(bs) == 1:
            return bs[0], ts[0]
    raise StatefulError(
        f"{src}: cannot tell which axes of {x.name} {sizes} are batch and time from the "
        f"graph; pass batch_axis= and time_axis= (rnnx stateful --batch-axis/--time-axis)"
    )


def free_reshapes(model: onnx.ModelProto, frozen: dict[str, int]) -> list[str]:
    """Compute at run time the Reshape shape entries that froze the export's batch or time size."""
    graph = model.graph
    notes: list[str] = []
    if not frozen:
        return notes
    for node in [n for n in graph.node if n.op_type == "Reshape"]:
        idx = GraphIndex(graph)
        target = idx.constant(node.input[1])
        if target is None:
            continue
        in_dims = inferred_shapes(model).get(node.input[0], [])
        pieces = _shape_pieces([int(t) for t in np.ravel(target)], in_dims, frozen)
        if pieces is None:
            continue
        graph_nodes = list(graph.node)
        at = graph_nodes.index(node)
        new_nodes, shape_name = _shape_nodes(graph, node, pieces)
        for i, n in enumerate(new_nodes):
            graph.node.insert(at + i, n)
        node.input[1] = shape_name
        notes.append(
            f"Reshape '{node.name or node.output[0]}': shape {np.ravel(target).tolist()} now "
            f"follows the input's batch/time size"
        )
    return notes


def _shape_pieces(target: list[int], in_dims: list, frozen: dict[str, int]) -> list | None:
    """Target entries as ints or ("dim", j) (the input's axis j), or None when nothing is frozen."""
    pieces: list = list(target)
    changed = False
    unmatched = []
    for sym, value in frozen.items():
        if sym not in in_dims:
            continue
        j = in_dims.index(sym)
        cands = [k for k, t in enumerate(pieces) if t == value]
        if not cands:
            unmatched.append(value)
            continue
        k = j if j in cands else min(cands, key=lambda c: abs(c - j))
        pieces[k] = ("dim", j)
        changed = True
    if unmatched and -1 not in pieces:  # merged axes, e.g. (T*B, H): let -1 absorb them
        prod = int(np.prod(unmatched))
        for k, t in enumerate(pieces):
            if t == prod:
                pieces[k] = -1
                changed = True
                break
    return pieces if changed else None


def _shape_nodes(graph: onnx.GraphProto, node: onnx.NodeProto, pieces: list) -> tuple[list, str]:
    base = fresh_name(graph, f"{node.name or node.output[0]}_dynshape")
    nodes = [helper.make_node("Shape", [node.input[0]], [f"{base}_in"], name=f"{base}_shape")]
    parts = []
    for k, p in enumerate(pieces):
        name = f"{base}_{k}"
        if isinstance(p, tuple):
            graph.initializer.append(numpy_helper.from_array(np.array([p[1]], np.int64), f"{name}_idx"))
            nodes.append(
                helper.make_node("Gather", [f"{base}_in", f"{name}_idx"], [name], name=f"{name}_gather", axis=0)
            )
        else:
            graph.initializer.append(numpy_helper.from_array(np.array([p], np.int64), name))
        parts.append(name)
    nodes.append(helper.make_node("Concat", parts, [base], name=f"{base}_concat", axis=0))
    return nodes, base
