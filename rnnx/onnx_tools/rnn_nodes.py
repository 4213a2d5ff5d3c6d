"""Recurrent nodes of any ONNX graph: where their state comes from and where it goes.

Shared by ``describe`` (``rnnx inspect`` of files rnnx did not write) and
``make_stateful`` (exposing the state of LSTM/GRU/RNN nodes as graph inputs/outputs).
Works on the ``onnx`` protobuf only; nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from rnnx.onnx_tools.graph import subgraphs

RNN_OPS = ("LSTM", "GRU", "RNN")  # ONNX ops with initial_h (and initial_c) inputs
LOOP_OPS = ("Scan", "Loop")  # ops that carry loop state through a body graph
# op -> ((state name, input index, output index), ...) per the ONNX operator spec
STATE_SLOTS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "LSTM": (("h", 5, 1), ("c", 6, 2)),
    "GRU": (("h", 5, 1),),
    "RNN": (("h", 5, 1),),
}
# ops whose output is (a reshaped, sliced, cast or copied version of) their first input
PASS_THROUGH = frozenset(
    {
        "Identity",
        "Cast",
        "Expand",
        "Reshape",
        "Unsqueeze",
        "Squeeze",
        "Tile",
        "Slice",
        "Gather",
        "Split",
        "Transpose",
        "Concat",
        "CastLike",
        "Flatten",
    }
)


@dataclass
class StateSlot:
    """One state of a recurrent node: its initial-value input and its final-value output."""

    kind: str  # "h" or "c"
    input_index: int  # index of initial_h / initial_c in node.input
    output_index: int  # index of Y_h / Y_c in node.output
    input_name: str  # "" when the optional input is absent
    output_name: str  # "" when the optional output is absent
    source: str  # "missing", "zeros", "graph input", "constant" or "computed"
    source_inputs: list[str] = field(default_factory=list)  # graph inputs it is read from
    exposed_as: list[str] = field(default_factory=list)  # graph outputs it reaches

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.kind,
            "initial": self.input_name or None,
            "source": self.source,
            "source_inputs": self.source_inputs,
            "final": self.output_name or None,
            "exposed_as": self.exposed_as,
        }


@dataclass
class RecurrentNode:
    """An LSTM/GRU/RNN node (or a Scan/Loop) and what it does with its state."""

    node: onnx.NodeProto
    index: int  # position in graph.node (-1 inside a subgraph)
    where: str  # "graph" or "inside <op> '<name>'" for nodes in a subgraph
    hidden_size: int = 0
    direction: str = "forward"
    layout: int = 0  # 0: X is (time, batch, features); 1: (batch, time, features)
    slots: list[StateSlot] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # Scan/Loop: loop-carried initial values
    carried_out: list[str] = field(default_factory=list)  # Scan/Loop: their final values

    @property
    def op(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self.node.name or f"{self.op}#{self.index}"

    @property
    def num_directions(self) -> int:
        return 2 if self.direction == "bidirectional" else 1

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"name": self.name, "op": self.op, "where": self.where}
        if self.op in RNN_OPS:
            d.update(
                {
                    "hidden_size": self.hidden_size,
                    "direction": self.direction,
                    "layout": self.layout,
                    "states": [s.to_dict() for s in self.slots],
                }
            )
        else:
            d.update({"carried": self.carried, "carried_out": self.carried_out})
        return d


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


class GraphIndex:
    """Producers, consumers, constants and I/O names of one graph, for walking it."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = [v.name for v in graph.input if v.name not in self.initializers]
        self.outputs = [v.name for v in graph.output]

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output, else None."""
        if name in self.initializers:
            t = self.initializers[name]
            if t.data_location == onnx.TensorProto.EXTERNAL:
                return None
            return numpy_helper.to_array(t)
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            a = node.attribute[0]
            if a.type == onnx.AttributeProto.TENSOR:
                return numpy_helper.to_array(a.t)
            return np.asarray(onnx.helper.get_attribute_value(a))
        return None

    def source(self, name: str, depth: int = 0) -> tuple[str, list[str]]:
        """Where a tensor's value comes from: (kind, graph inputs read).

        kind is "zeros" (constants that are all zero, possibly expanded to a dynamic
        shape), "graph input", "constant" (non-zero) or "computed" (anything else).
        """
        if name in self.inputs:
            return "graph input", [name]
        value = self.constant(name)
        if value is not None:
            return ("zeros" if value.size == 0 or not np.any(value) else "constant"), []
        node = self.producer.get(name)
        if node is None or depth > 32:
            return "computed", []
        if node.op_type == "ConstantOfShape":
            v = _attr(node, "value", None)
            zero = v is None or not np.any(numpy_helper.to_array(v))
            return ("zeros" if zero else "constant"), []
        if node.op_type not in PASS_THROUGH:
            return "computed", []
        data = [node.input[0]] if node.op_type != "Concat" else [i for i in node.input if i]
        kinds = [self.source(d, depth + 1) for d in data]
        reads = [g for _, gs in kinds for g in gs]
        for kind in ("computed", "graph input", "constant"):
            if any(k == kind for k, _ in kinds):
                return kind, reads
        return "zeros", reads

    def reaches(self, name: str, depth: int = 0) -> list[str]:
        """Graph outputs that ``name`` reaches through pass-through ops (itself included)."""
        found = [name] if name in self.outputs else []
        if depth > 32:
            return found
        for n in self.consumers.get(name, []):
            if n.op_type in PASS_THROUGH and n.input and (n.input[0] == name or n.op_type == "Concat"):
                for o in n.output:
                    found += [r for r in self.reaches(o, depth + 1) if r not in found]
        return found


def find_recurrent(graph: onnx.GraphProto, where: str = "graph") -> list[RecurrentNode]:
    """Every LSTM/GRU/RNN/Scan/Loop node, subgraphs included, in graph order."""
    idx = GraphIndex(graph)
    found: list[RecurrentNode] = []
    for i, node in enumerate(graph.node):
        index = i if where == "graph" else -1
        if node.op_type in RNN_OPS:
            rn = RecurrentNode(
                node,
                index,
                where,
                int(_attr(node, "hidden_size", 0)),
                str(_attr(node, "direction", "forward")),
                int(_attr(node, "layout", 0)),
            )
            for kind, i_in, i_out in STATE_SLOTS[node.op_type]:
                name_in = node.input[i_in] if len(node.input) > i_in else ""
                name_out = node.output[i_out] if len(node.output) > i_out else ""
                src, reads = idx.source(name_in) if name_in else ("missing", [])
                rn.slots.append(
                    StateSlot(
                        kind, i_in, i_out, name_in, name_out, src, reads, idx.reaches(name_out) if name_out else []
                    )
                )
            found.append(rn)
        elif node.op_type in LOOP_OPS:
            if node.op_type == "Scan":
                n_scan = int(_attr(node, "num_scan_inputs", 0))
                carried = list(node.input[: len(node.input) - n_scan])
            else:  # Loop: (M, cond, v_initial...) -> (v_final..., scan outputs...)
                carried = list(node.input[2:])
            found.append(
                RecurrentNode(node, index, where, carried=carried, carried_out=list(node.output[: len(carried)]))
            )
        for g in subgraphs(node):
            found += find_recurrent(g, f"inside {node.op_type} '{node.name or i}'")
    return found
