"""Forward and reverse Scans per recurrent layer: models that need the whole sequence.

For bidirectional stacks the native ops cannot express (LSTM with ``proj_size``, and
relu RNNs, see :mod:`rnnx.exporter.strategies.trace`). The model is decomposed
(:func:`rnnx.models.decompose`), then each layer's time loop is replaced by a
placeholder op per direction while the rest of the model is exported as usual; each
placeholder then becomes an ONNX ``Scan`` whose body is that direction's cell, exported
on its own at one step. The reverse direction scans the time-flipped sequence and flips
its outputs back, so every Scan runs forward over axis 0 (``onnx.reference`` supports
nothing else). Each cell's weights stay inside its Scan body. No Loop, no Sequence ops.
"""

from __future__ import annotations

import onnx
import torch
from onnx import helper
from torch import Tensor, nn

from rnnx.exporter.strategies.base import ExportContext, Flat, export_traced
from rnnx.exporter.strategies.scan import decomposed
from rnnx.spec import BATCH

DOMAIN = "rnnx.placeholder"  # domain of the placeholder ops (none survives in a written file)
OP = "CellScan"  # placeholder op: (x (T, B, I), *state (B, ...)) -> (y (T, B, ...), *state)


def _cell_call(cell: nn.Module, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One step of an rnnx cell: ``(y_t, *new_states)``; LSTM cells carry (h, c), others h."""
    if len(states) == 2:
        h, c = cell(x, (states[0], states[1]))
        return h, h, c
    h = cell(x, states[0])
    return h, h


def _scan_op(cell: nn.Module, key: int) -> type[torch.autograd.Function]:
    """An op that runs ``cell`` over time eagerly and exports as one placeholder node."""

    class CellScan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
            tracing = torch._C._get_tracing_state()
            torch._C._set_tracing_state(None)  # the node is the placeholder, not the loop
            try:
                ys: list[Tensor] = []
                for t in range(x.size(0)):  # x (T, B, I)
                    y, *new = _cell_call(cell, x[t], states)
                    states = tuple(new)
                    ys.append(y)
                return (torch.stack(ys, 0), *states)  # y (T, B, H), states (B, ...)
            finally:
                torch._C._set_tracing_state(tracing)

        @staticmethod
        def symbolic(g, x, *states):  # noqa: ANN001, ANN205 (torch's graph types)
            return g.op(f"{DOMAIN}::{OP}", x, *states, key_i=key, outputs=1 + len(states))

    return CellScan


class _ScanLayer(nn.Module):
    """Stands in for a decomposed layer (both directions) during export."""

    def __init__(self, layer: nn.Module, cells: list[nn.Module]) -> None:
        super().__init__()
        self.layer = layer
        self.ops = []
        for cell in (layer.fw, layer.bw):
            if cell is not None:
                self.ops.append(_scan_op(cell, len(cells)))
                cells.append(cell)

    def forward(self, x: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        """x (T, B, I), h (D, B, H) [, c (D, B, H)] -> (y (T, B, D*H), h_n [, c_n])."""
        ys, hs, cs = [], [], []
        for d, op in enumerate(self.ops):
            xs = x if d == 0 else torch.flip(x, [0])  # reverse: scan the flipped sequence
            states = (h[d],) if c is None else (h[d], c[d])
            y, *new = op.apply(xs, *states)
            ys.append(y if d == 0 else torch.flip(y, [0]))  # (T, B, H), back in time order
            hs.append(new[0])
            if c is not None:
                cs.append(new[1])
        y = torch.cat(ys, 2)
        if c is None:
            return y, torch.stack(hs, 0)
        return y, torch.stack(hs, 0), torch.stack(cs, 0)


def _swap_layers(model: nn.Module) -> list[nn.Module]:
    """Replace every decomposed layer in ``model`` by a :class:`_ScanLayer`; returns the cells."""
    from rnnx.models.layers import _HiddenLayer, _LSTMLayer

    cells: list[nn.Module] = []
    for parent in list(model.modules()):
        if isinstance(parent, nn.ModuleList):
            for i, child in enumerate(parent):
                if isinstance(child, (_HiddenLayer, _LSTMLayer)):
                    parent[i] = _ScanLayer(child, cells)
    if not cells:
        raise ValueError("no nn.RNN/LSTM/GRU layers to scan (only those can be split into "
                         "forward and reverse scans)")
    return cells


class _CellStep(nn.Module):
    """``forward(*states, x_t) -> (*new_states, y_t)``: a Scan body's signature."""

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        y, *new = _cell_call(self.cell, args[-1], tuple(args[:-1]))
        return (*new, y * 1.0)  # y is h: a distinct tensor, so the body has distinct outputs


def _cell_body(cell: nn.Module, x: Tensor, states: tuple[Tensor, ...], key: int,
               ctx: ExportContext) -> onnx.GraphProto:
    """The cell at one step as a Scan body; every name prefixed ``cell{key}/``."""
    n = len(states)
    ins = [f"s{i}" for i in range(n)] + ["x_t"]
    outs = [f"s{i}_out" for i in range(n)] + ["y_t"]
    axes = {name: {0: BATCH} for name in ins + outs}
    step = export_traced(_CellStep(cell), (*states, x), ctx.spec, ctx.opset, names=(ins, outs),
                         axes=axes).graph
    prefix = f"cell{key}/"
    rename = {v: prefix + v for v in _graph_names(step)}
    for node in step.node:
        node.name = prefix + node.name
        node.input[:] = [rename.get(v, v) for v in node.input]
        node.output[:] = [rename.get(v, v) for v in node.output]
    for v in [*step.input, *step.output, *step.initializer, *step.value_info]:
        v.name = rename.get(v.name, v.name)
    return helper.make_graph(list(step.node), f"cell{key}", list(step.input), list(step.output),
                             initializer=list(step.initializer), value_info=list(step.value_info))


def _graph_names(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in [*graph.input, *graph.output, *graph.initializer]}
    for node in graph.node:
        names.update(v for v in [*node.input, *node.output] if v)
    return names


def _example_states(cell: nn.Module, batch: int, dtype: torch.dtype) -> tuple[Tensor, ...]:
    hidden = getattr(cell, "proj_size", 0) or cell.hidden_size
    h = torch.randn(batch, hidden, dtype=dtype)
    if hasattr(cell, "proj_size"):  # LSTM: (h (B, P or H), c (B, H))
        return h, torch.randn(batch, cell.hidden_size, dtype=dtype)
    return (h,)


def _replace_placeholders(model: onnx.ModelProto, bodies: dict[int, onnx.GraphProto]) -> None:
    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.domain != DOMAIN:
            nodes.append(node)
            continue
        key = next(a.i for a in node.attribute if a.name == "key")
        x, *states = node.input
        y, *new = node.output
        nodes.append(helper.make_node("Scan", [*states, x], [*new, y], name=f"layer_scan_{key}",
                                      body=bodies[key], num_scan_inputs=1))
    del graph.node[:]
    graph.node.extend(nodes)
    keep = [o for o in model.opset_import if o.domain != DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(keep)


class LayerScanStrategy:
    """Per-layer forward and reverse Scans over the cells of the decomposed model."""

    name = "layer-scan"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        model = decomposed(ctx.model)
        cells = _swap_layers(model)
        dtype = ctx.example.dtype if ctx.example.is_floating_point() else torch.float32
        batch = ctx.example.shape[ctx.spec.input.batch_axis]
        bodies = {}
        for key, cell in enumerate(cells):
            x_t = torch.randn(batch, cell.input_size, dtype=dtype)
            bodies[key] = _cell_body(cell, x_t, _example_states(cell, batch, dtype), key, ctx)
        proto = export_traced(Flat(model), (ctx.example, *ctx.state), ctx.spec, ctx.opset)
        _replace_placeholders(proto, bodies)
        return proto
