"""Rewrite an exported graph so that every state tensor has its batch axis first.

rnnx keeps each state in the layout its model uses (``(layers, batch, hidden)`` for
RNN/LSTM/GRU, ``(batch, C, H, W)`` for ConvLSTM). Serving engines that stack many
sequences' states on one axis (Triton's implicit state, for one) want the batch axis
first. :func:`to_batch_first` wraps the graph with one ``Transpose`` per state input and
output; the computation inside is untouched, so the result is exact.

Example:
    >>> from rnnx.spec import StateSpec
    >>> batch_first_shape(StateSpec("h", (2, "batch", 64), input="h_in", output="h_out"))
    ('batch', 2, 64)

    The whole graph: ``proto, spec = to_batch_first(onnx.load(path), read_spec(path))``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import onnx
from onnx import helper

from rnnx.onnx_tools.graph import subgraphs, write_shape
from rnnx.spec import BATCH, ModelSpec, StateSpec


def batch_first_shape(state: StateSpec) -> tuple:
    """The state's shape with ``"batch"`` moved to axis 0, the other axes in order."""
    b = state.batch_axis
    return (BATCH, *state.shape[:b], *state.shape[b + 1 :])


def _to_model_perm(batch_axis: int, rank: int) -> list[int]:
    """Transpose perm from the batch-first layout back to the model's layout."""
    return [0 if i == batch_axis else (i + 1 if i < batch_axis else i) for i in range(rank)]


def _to_batch_first_perm(batch_axis: int, rank: int) -> list[int]:
    """Transpose perm from the model's layout to the batch-first layout."""
    return [batch_axis] + [i for i in range(rank) if i != batch_axis]


def rename_uses(nodes: Iterable[onnx.NodeProto], old: str, new: str) -> None:
    """Point every node input named ``old`` (subgraphs included) at ``new``."""
    for node in nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for g in subgraphs(node):
            rename_uses(g.node, old, new)


def rename_producer(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Point the node output named ``old`` at ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new


def to_batch_first(proto: onnx.ModelProto, spec: ModelSpec) -> tuple[onnx.ModelProto, ModelSpec]:
    """A copy of ``proto`` whose state inputs/outputs are batch-first, and its spec.

    The graph keeps its I/O names; ``{state}_in`` is transposed to the model's layout
    before the original nodes read it, and ``{state}_out`` is transposed back after.
    States already batch-first are left alone. The spec's ``extra["state_layout"]`` says
    ``"batch_first"`` and its ``step_graph`` is cleared (the source's step graph keeps the
    model's layout); storing the new spec in the file is the caller's job.
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    inputs = {v.name: v for v in graph.input}
    outputs = {v.name: v for v in graph.output}
    states = []
    pre: list[onnx.NodeProto] = []
    post: list[onnx.NodeProto] = []
    for s in spec.state:
        rank, b = len(s.shape), s.batch_axis
        new_shape = batch_first_shape(s)
        if b != 0:
            inner_in, inner_out = f"{s.input}__model_layout", f"{s.output}__model_layout"
            rename_uses(graph.node, s.input, inner_in)
            rename_uses(graph.node, s.output, inner_out)
            rename_producer(graph, s.output, inner_out)
            pre.append(
                helper.make_node(
                    "Transpose", [s.input], [inner_in], name=f"{s.name}_to_model_layout", perm=_to_model_perm(b, rank)
                )
            )
            post.append(
                helper.make_node(
                    "Transpose",
                    [inner_out],
                    [s.output],
                    name=f"{s.name}_to_batch_first",
                    perm=_to_batch_first_perm(b, rank),
                )
            )
            write_shape(inputs[s.input], new_shape)
            write_shape(outputs[s.output], new_shape)
        states.append(dataclasses.replace(s, shape=new_shape))
    nodes = [*pre, *graph.node, *post]
    del graph.node[:]
    graph.node.extend(nodes)
    new_spec = dataclasses.replace(
        spec, state=tuple(states), step_graph=None, extra={**spec.extra, "state_layout": "batch_first"}
    )
    return out, new_spec
