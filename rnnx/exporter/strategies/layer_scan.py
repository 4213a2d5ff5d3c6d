"""One Scan per recurrent layer and direction, input projections hoisted out of the time loop.

The model is decomposed (:func:`rnnx.models.decompose`), then each recurrent layer's
time loop is replaced by a placeholder op per direction while the rest of the model is
exported over the whole sequence as usual; each placeholder then becomes the cell's
graph from :mod:`rnnx.exporter.cell_graphs`: the input projection of every step in one
``MatMul`` (or ``Conv``) and a ``Scan`` whose body does only the recurrent part. The
reverse direction scans the time-flipped sequence and flips its outputs back, so every
Scan runs forward over axis 0 (``onnx.reference`` supports nothing else). Each cell's
recurrent weights stay inside its Scan body. No Loop, no Sequence ops.

Two exporters build the rest of the model:

- :func:`layered_graph` with ``dynamo=True`` (``torch.onnx.export(dynamo=True)``): the
  placeholder is a ``torch.library`` custom op, so torch.export sees no time loop and
  keeps the time axis dynamic. The ``scan`` strategy builds this for streamable models
  whose recurrence is in torch (or rnnx) RNN/LSTM/GRU layers or ConvLSTM layers.
- ``dynamo=False`` (the TorchScript-based exporter): the ``layer-scan`` strategy, for
  bidirectional stacks (LSTM with ``proj_size``, relu RNNs) the native ops cannot express.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import onnx
import torch
from torch import Tensor, nn

from rnnx.exporter import cell_graphs
from rnnx.exporter.strategies.base import ExportContext, Flat, decomposed, export_traced, io_names
from rnnx.exporter.strategies.dynamo import export_program, model_axes
from rnnx.onnx_tools.graph import check_io, to_opset

DOMAIN = "rnnx.placeholder"  # domain of the placeholder ops (none survives in a written file)


def _op_type(n_states: int) -> str:
    """Placeholder op: (x (T, B, I), *state (B, ...)) -> (y (T, B, ...), *state)."""
    return f"CellScan{n_states}"


def _is_conv_layer(layer: nn.Module) -> bool:
    """A ConvLSTM layer: the layer is its own cell, batch-first, one direction."""
    return isinstance(layer, cell_graphs.ConvLSTMLayer)


def _layer_cells(layer: nn.Module) -> list[nn.Module]:
    if _is_conv_layer(layer):
        return [layer]
    return [c for c in (layer.fw, layer.bw) if isinstance(c, nn.Module)]


def _cell_step(cell: nn.Module, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """One step of an rnnx cell: ``(y_t, *new_states)``; LSTM cells carry (h, c), others h."""
    step = getattr(cell, "step", cell)  # a ConvLSTM layer's forward runs a sequence; step is the cell
    if len(states) == 2:
        h, c = step(x, (states[0], states[1]))
        return h, h, c
    h = step(x, states[0])
    return h, h


def _legacy_op(cell: nn.Module, key: int) -> type[torch.autograd.Function]:
    """An op that runs ``cell`` over time eagerly and exports (dynamo=False) as one placeholder."""

    class CellScan(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
            tracing = torch._C._get_tracing_state()
            torch._C._set_tracing_state(None)  # type: ignore[attr-defined]  # torch's _C stub lacks it; the node is the placeholder, not the loop
            try:
                ys: list[Tensor] = []
                for t in range(x.size(0)):  # x (T, B, I)
                    y, *new = _cell_step(cell, x[t], states)
                    states = tuple(new)
                    ys.append(y)
                return (torch.stack(ys, 0), *states)  # y (T, B, H), states (B, ...)
            finally:
                torch._C._set_tracing_state(tracing)  # type: ignore[attr-defined]  # torch's _C stub lacks it

        @staticmethod
        def symbolic(g, x, *states):  # noqa: ANN001, ANN205 (torch's graph types)
            return g.op(f"{DOMAIN}::{_op_type(len(states))}", x, *states, key_i=key, outputs=1 + len(states))

    return CellScan


_registered = threading.Lock()
_translation: dict = {}  # torch op -> ONNX translation, filled once by _dynamo_op()


def _dynamo_op():  # noqa: ANN202 (a torch OpOverload)
    """``torch.ops.rnnx.cell_scan``: the placeholder torch.export records (registered once).

    Its ONNX translation is a node ``rnnx.placeholder::CellScan{n}``; the op has no eager
    meaning (only its output shapes, for torch.export's fake tensors).
    """
    with _registered:
        if _translation:
            return next(iter(_translation))
        import onnxscript
        from onnx.defs import OpSchema

        @torch.library.custom_op("rnnx::cell_scan", mutates_args=())
        def cell_scan(x: Tensor, states: list[Tensor], key: int, stacked: bool) -> list[Tensor]:
            raise RuntimeError("rnnx::cell_scan is an export placeholder; it does not run")

        @cell_scan.register_fake
        def _(x: Tensor, states: list[Tensor], key: int, stacked: bool) -> list[Tensor]:
            h = states[0].shape[2:] if stacked else states[0].shape[1:]  # (L, B, ...) or (B, ...)
            y = x.new_empty((x.shape[0], x.shape[1], *h))  # (T, B, ...h)
            return [y, *(s.new_empty(s.shape) for s in states)]

        param = OpSchema.FormalParameter
        floats = ["tensor(float)", "tensor(double)", "tensor(float16)"]
        for n in (1, 2):
            if not onnx.defs.has(_op_type(n), DOMAIN):
                onnx.defs.register_schema(
                    OpSchema(
                        _op_type(n),
                        DOMAIN,
                        1,
                        inputs=[param("x", "T"), *(param(f"s{i}", "T") for i in range(n))],
                        outputs=[param("y", "T"), *(param(f"s{i}_out", "T") for i in range(n))],
                        type_constraints=[("T", floats, "float tensors")],
                        attributes=[OpSchema.Attribute("key", OpSchema.AttrType.INT, "cell index")],
                    )
                )
        opset = onnxscript.values.Opset(DOMAIN, 1)

        def translate(x, states, key: int, stacked: bool):  # noqa: ANN001, ANN202 (onnxscript tensors)
            return getattr(opset, _op_type(len(states)))(x, *states, key=key)

        op = torch.ops.rnnx.cell_scan.default
        _translation[op] = translate
        return op


@dataclass(frozen=True)
class Unit:
    """What one placeholder runs: a cell (states (B, ...)) or a stack of layers' cells."""

    cells: list[nn.Module]  # layer 0 first
    stacked: bool  # states stack the layers: (L, B, ...)


class _ScanStack(nn.Module):
    """Stands in for a one-direction :class:`~rnnx.models.stack.LayerStack` (dynamo export):
    the whole stack is one placeholder, so one Scan runs every layer."""

    def __init__(self, stack: nn.ModuleList, units: list[Unit]) -> None:
        super().__init__()
        self.stack = stack
        self.conv = _is_conv_layer(stack[0])
        self.key = len(units)
        units.append(Unit([c for layer in stack for c in _layer_cells(layer)], stacked=True))
        self.op = _dynamo_op()

    def forward(self, x: Tensor, state: list[Tensor], dropout: float) -> tuple[Tensor, list[Tensor]]:
        """As LayerStack: x (T, B, I) (ConvLSTM: (B, T, ...)), ``[h]`` or ``[h, c]`` (L, B, ...)."""
        if self.conv:
            x = x.transpose(0, 1)  # (T, B, C, H, W)
        y, *new = self.op(x, list(state), self.key, True)
        if self.conv:
            y = y.transpose(0, 1)  # (B, T, Ch, H, W)
        return y, list(new)


class _ScanLayer(nn.Module):
    """Stands in for one recurrent layer (both directions) during export."""

    def __init__(self, layer: nn.Module, units: list[Unit], dynamo: bool) -> None:
        super().__init__()
        self.layer = layer
        self.conv = _is_conv_layer(layer)
        self.keys: list[int] = []
        self.ops: list[type[torch.autograd.Function]] = []  # one per direction, legacy export only
        for cell in _layer_cells(layer):
            self.keys.append(len(units))
            if not dynamo:
                self.ops.append(_legacy_op(cell, len(units)))
            units.append(Unit([cell], stacked=False))
        self.dynamo_op = _dynamo_op() if dynamo else None

    def _run(self, d: int, x: Tensor, states: tuple[Tensor, ...]) -> list[Tensor]:
        if self.dynamo_op is not None:
            return list(self.dynamo_op(x, list(states), self.keys[d], False))
        return list(self.ops[d].apply(x, *states))

    def forward(self, x: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, ...]:
        """x (T, B, I) (ConvLSTM: (B, T, ...)), h (D, B, ...) [, c] -> (y, h_n [, c_n])."""
        if self.conv:
            x = x.transpose(0, 1)  # (T, B, C, H, W)
        ys, hs, cs = [], [], []
        for d in range(len(self.keys)):
            xs = x if d == 0 else torch.flip(x, [0])  # reverse: scan the flipped sequence
            states = (h[d],) if c is None else (h[d], c[d])
            y, *new = self._run(d, xs, states)
            ys.append(y if d == 0 else torch.flip(y, [0]))  # (T, B, H), back in time order
            hs.append(new[0])
            if c is not None:
                cs.append(new[1])
        y = torch.cat(ys, 2) if len(ys) > 1 else ys[0]
        if self.conv:
            y = y.transpose(0, 1)  # (B, T, Ch, H, W)
        if c is None:
            return y, torch.stack(hs, 0)
        return y, torch.stack(hs, 0), torch.stack(cs, 0)


def _layer_types() -> tuple[type, ...]:
    from rnnx.models.layers import _HiddenLayer, _LSTMLayer

    return (_HiddenLayer, _LSTMLayer, cell_graphs.ConvLSTMLayer)


def _swap_layers(model: nn.Module, dynamo: bool) -> list[Unit]:
    """Replace the recurrent layers in ``model`` by placeholders; returns what each one runs.

    With ``dynamo``, a stack of one-direction layers becomes one :class:`_ScanStack`; every
    other layer becomes a :class:`_ScanLayer` (one placeholder per direction).

    Raises:
        ValueError: the model has no such layer.
    """
    from rnnx.models.stack import LayerStack

    types = _layer_types()
    units: list[Unit] = []
    done: set[int] = set()  # ids of the stacks swapped whole
    if dynamo:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if (
                    isinstance(child, LayerStack)
                    and child.width == 1
                    and len(child) > 0
                    and all(isinstance(layer, types) for layer in child)
                ):
                    setattr(parent, name, _ScanStack(child, units))
                    done.add(id(child))
    for parent in list(model.modules()):
        if isinstance(parent, nn.ModuleList) and id(parent) not in done:
            for i, child in enumerate(parent):
                if isinstance(child, types):
                    parent[i] = _ScanLayer(child, units, dynamo)
    if not units:
        raise ValueError(
            "no nn.RNN/LSTM/GRU layers to scan (nor ConvLSTM layers: only those can be split into per-layer scans)"
        )
    return units


def has_layers(model: nn.Module) -> bool:
    """True if the decomposed ``model`` has recurrent layers :func:`layered_graph` can scan."""
    types = _layer_types()
    return any(isinstance(m, types) for m in decomposed(model).modules())


def _replace_placeholders(model: onnx.ModelProto, units: list[Unit]) -> None:
    """Each placeholder node -> its cells' projection and Scan (:func:`cell_graphs.stack_scan`)."""
    graph = model.graph
    nodes, inits = [], []
    for node in graph.node:
        if node.domain != DOMAIN:
            nodes.append(node)
            continue
        key = next(a.i for a in node.attribute if a.name == "key")
        x, *states = node.input
        y, *new = node.output
        unit = units[key]
        more, weights = cell_graphs.stack_scan(
            unit.cells, x, list(states), y, list(new), f"rnn{key}/", stacked=unit.stacked
        )
        nodes.extend(more)
        inits.extend(weights)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    keep = [o for o in model.opset_import if o.domain != DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def layered_graph(ctx: ExportContext, dynamo: bool) -> onnx.ModelProto:
    """The decomposed model with one lean Scan per layer and direction.

    Raises:
        ValueError: the model has no recurrent layers to scan.
        ExportError: torch.export fixed the batch or time axis.
    """
    model = decomposed(ctx.model)
    units = _swap_layers(model, dynamo)
    if dynamo:
        args, spec = (ctx.example, *ctx.state), ctx.spec
        translations = dict(_translation)  # the layer placeholders (replaced below)
        proto = export_program(Flat(model), args, io_names(spec), model_axes(spec), ctx.opset, translations)
        proto = to_opset(proto, ctx.opset)  # declared shapes kept: inference cannot see through the placeholders
        check_io(proto.graph, ctx.spec)  # torch.export may have frozen time (a loop over x's steps)
    else:
        proto = export_traced(Flat(model), (ctx.example, *ctx.state), ctx.spec, ctx.opset)
    _replace_placeholders(proto, units)  # the cells' nodes are valid at every opset >= 13
    return proto


class LayerScanStrategy:
    """Per-layer forward and reverse Scans over the cells of the decomposed model."""

    name = "layer-scan"
    auto = True

    def build(self, ctx: ExportContext) -> onnx.ModelProto:
        return layered_graph(ctx, dynamo=False)
