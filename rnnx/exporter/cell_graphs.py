"""rnnx's recurrent cells as ONNX: the one place that knows their gate equations as graph nodes.

A stack of cells (layers) run over a whole sequence becomes

- the first layer's **input projection**, hoisted out of the time loop: one ``MatMul`` over
  every step at once, with every bias that can be folded into it;
- one ONNX ``Scan`` over time (axis 0, time-major) whose body holds per layer only one
  ``MatMul`` for all gates with the recurrent weight (pre-transposed, a body initializer:
  weights used only by the body stay in it; later layers also project the layer below's
  new ``h`` there), one ``Split`` and the gate math (LSTM gates reordered to i, f, o, g so one
  ``Sigmoid`` covers three of them).

No shape arithmetic runs per step, and onnxruntime pays per node and per Scan iteration,
so every node saved per step counts: measured on onnxruntime 1.32 (CPU, batch 1) a 2-layer
LSTM 16->64 ran 64-step chunks 1.7x faster than a traced one-step body. A ConvLSTM keeps one
``Conv`` over ``cat([x, h])`` per step: hoisting its input half (a 3-D ``Conv`` over all
steps) was measured no faster over 64 steps and slower for one.
Built directly from the cell's parameters (no tracing),
for :class:`~rnnx.models.cells.LSTMCell` (``proj_size`` too), :class:`~rnnx.models.cells.GRUCell`,
:class:`~rnnx.models.cells.RNNCell` and :class:`~rnnx.models.cells.ConvLSTMCell`; any other
cell (a user's own) is not handled here (:func:`supports` says which) and keeps a traced body.

The recurrent product is ``MatMul`` + ``Add`` rather than ``Gemm``: onnxruntime fuses the two
into a ``Gemm`` at load, and its int8 quantizer quantizes ``MatMul`` but not ``Gemm``.
The results equal the cell's to float rounding (the projection's sums run in another order).

Example::

    nodes, inits = stack_scan([LSTMCell(4, 8), LSTMCell(8, 8)], "x_tm", ["h0", "c0"], "y_tm",
                              ["h1", "c1"], "rnn0/")  # h0, c0: (2, B, 8)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from torch import nn

from rnnx.models.cells import ConvLSTMCell, GRUCell, LSTMCell, RNNCell
from rnnx.models.convlstm import ConvLSTMLayer  # a ConvLSTMCell run over a sequence, same step
from rnnx.spec import BATCH

_CELLS = (LSTMCell, GRUCell, RNNCell, ConvLSTMCell, ConvLSTMLayer)  # exactly these types: a subclass
# may change the equations


def supports(cell: nn.Module) -> bool:
    """True for the cells this module can write as a lean Scan (not for users' own cells)."""
    return type(cell) in _CELLS


def _array(t) -> np.ndarray:  # noqa: ANN001 (a torch tensor or None)
    return t.detach().cpu().numpy()


class _Graph:
    """Nodes and initializers under one name prefix (names stay unique across subgraphs)."""

    def __init__(self, prefix: str, dtype: np.dtype) -> None:
        self.prefix = prefix
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def scoped(self, prefix: str) -> _Graph:
        """The same graph (nodes, initializers) under another name prefix."""
        child = _Graph(prefix, self.dtype)
        child.nodes, child.inits = self.nodes, self.inits
        return child

    def const(self, name: str, value: np.ndarray) -> str:
        full = self.prefix + name
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), full))  # 0-d stays 0-d
        return full

    def weight(self, name: str, value: np.ndarray) -> str:
        return self.const(name, value.astype(self.dtype))

    def ints(self, name: str, values: list[int]) -> str:
        return self.const(name, np.array(values, np.int64))

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> list[str]:
        outs = [f"{self.prefix}{name}" if n_out == 1 else f"{self.prefix}{name}_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{self.prefix}{name}", **attrs))
        return outs

    def op1(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        return self.op(op_type, inputs, name, **attrs)[0]

    def split(self, x: str, sizes: list[int], name: str, axis: int = 1) -> list[str]:
        return self.op("Split", [x, self.ints(f"{name}_sizes", sizes)], name, n_out=len(sizes), axis=axis)


def _ifog(cell: nn.Module, rows: np.ndarray) -> np.ndarray:
    """An LSTM weight or bias with its gate blocks reordered from torch's i, f, g, o to
    i, f, o, g (so one Sigmoid covers i, f, o); other cells' rows unchanged."""
    if not isinstance(cell, (LSTMCell, ConvLSTMCell)):
        return rows
    i, f, g, o = np.split(rows, 4, axis=0)
    return np.concatenate([i, f, o, g], axis=0)


def _lstm_math(g: _Graph, gates: str, c: str, hidden: int) -> tuple[str, str]:
    """Gates in the order i, f, o, g (see :func:`_ifog`) stacked on axis 1 -> (h, c)."""
    ifo, gg = g.split(gates, [3 * hidden, hidden], "gates")
    i, f, o = g.split(g.op1("Sigmoid", [ifo], "ifo"), [hidden] * 3, "ifo_split")
    fc = g.op1("Mul", [f, c], "f_c")
    ig = g.op1("Mul", [i, g.op1("Tanh", [gg], "g")], "i_g")
    c_new = g.op1("Add", [fc, ig], "c")
    h_new = g.op1("Mul", [o, g.op1("Tanh", [c_new], "tanh_c")], "h")
    return h_new, c_new


def _recurrent(g: _Graph, h: str, w_hh: np.ndarray, add: str, name: str) -> str:
    """``h @ w_hh.T + add`` (onnxruntime fuses the pair into one Gemm)."""
    return g.op1("Add", [g.op1("MatMul", [h, g.weight(f"{name}_wT", w_hh.T)], f"{name}_mm"), add], name)


def _bias(cell: nn.Module, name: str) -> np.ndarray | None:
    b = getattr(cell, name, None)
    return None if b is None else _array(b)


def _folded_bias(cell: nn.Module, hh_mask: np.ndarray | None = None) -> np.ndarray | None:
    """``b_ih + b_hh`` (``b_hh`` times ``hh_mask`` where only part of it may move), or None."""
    b_ih, b_hh = _bias(cell, "bias_ih"), _bias(cell, "bias_hh")
    if b_ih is None and b_hh is None:
        return None
    total = np.zeros(_array(cell.weight_ih).shape[0], np.float64)
    if b_ih is not None:
        total = total + b_ih
    if b_hh is not None:
        total = total + (b_hh if hh_mask is None else b_hh * hh_mask)
    return total


def _matmul_project(cell: nn.Module, g: _Graph, x: str, bias: np.ndarray | None) -> str:
    """``x @ W_ih.T (+ bias)``: x (T, B, I) outside the loop (every step at once) or (B, I) in it."""
    xp = g.op1("MatMul", [x, g.weight("w_ihT", _ifog(cell, _array(cell.weight_ih)).T)], "x_proj")
    return xp if bias is None else g.op1("Add", [xp, g.weight("b", _ifog(cell, bias))], "x_proj_b")


def _gru_rz(cell: GRUCell) -> np.ndarray:
    """Mask of the GRU bias rows that may fold into the projection: b_hr, b_hz (not b_hn)."""
    return np.concatenate([np.ones(2 * cell.hidden_size), np.zeros(cell.hidden_size)])


def _project(cell: nn.Module, g: _Graph, x: str) -> str:
    """The cell's input projection with every foldable bias: (T, B, ...) or one step (B, ...)."""
    if isinstance(cell, ConvLSTMCell):  # not hoisted: measured no faster over 64 steps, slower for one
        return x
    return _matmul_project(cell, g, x, _folded_bias(cell, _gru_rz(cell) if isinstance(cell, GRUCell) else None))


def _step(cell: nn.Module, g: _Graph, xp: str, states: list[str]) -> list[str]:
    """The recurrent part of one step, from the projected input ``xp`` (B, G...): new states."""
    if isinstance(cell, LSTMCell):
        gates = _recurrent(g, states[0], _ifog(cell, _array(cell.weight_hh)), xp, "gates_sum")
        h_new, c_new = _lstm_math(g, gates, states[1], cell.hidden_size)
        if cell.weight_hr is not None:  # projection: h is (B, P)
            h_new = g.op1("MatMul", [h_new, g.weight("w_hrT", _array(cell.weight_hr).T)], "h_proj")
        return [h_new, c_new]
    if isinstance(cell, GRUCell):
        h, hid = states[0], cell.hidden_size
        b_hh = _bias(cell, "bias_hh")
        gh = g.op1("MatMul", [h, g.weight("w_hhT", _array(cell.weight_hh).T)], "gh_mm")
        if b_hh is not None:  # b_hn stays here: the reset gate multiplies W_hn h + b_hn
            gh = g.op1("Add", [gh, g.weight("b_hn", b_hh * (1 - _gru_rz(cell)))], "gh")
        gh_rz, gh_n = g.split(gh, [2 * hid, hid], "gh_split")
        x_rz, x_n = g.split(xp, [2 * hid, hid], "x_split")
        r, z = g.split(g.op1("Sigmoid", [g.op1("Add", [x_rz, gh_rz], "rz_sum")], "rz"), [hid, hid], "rz_split")
        n = g.op1("Tanh", [g.op1("Add", [x_n, g.op1("Mul", [r, gh_n], "r_gh")], "n_sum")], "n")
        return [g.op1("Add", [n, g.op1("Mul", [z, g.op1("Sub", [h, n], "h_minus_n")], "z_d")], "h")]
    if isinstance(cell, RNNCell):
        pre = _recurrent(g, states[0], _array(cell.weight_hh), xp, "pre")
        return [g.op1("Relu" if cell.relu else "Tanh", [pre], "h")]
    if not isinstance(cell, ConvLSTMCell):
        raise TypeError(f"cell: expected an rnnx LSTM, GRU, RNN or ConvLSTM cell, got {type(cell).__name__}")
    # ConvLSTM: one conv over cat([x, h]) per step, as the cell computes it
    conv_in = [g.op1("Concat", [xp, states[0]], "x_h", axis=1), g.weight("w", _ifog(cell, _array(cell.conv.weight)))]
    if cell.conv.bias is not None:
        conv_in.append(g.weight("b", _ifog(cell, _array(cell.conv.bias))))
    gates = g.op1("Conv", conv_in, "gates_sum", pads=[cell.kernel_size // 2] * 4)  # (B, 4Ch, H, W)
    return list(_lstm_math(g, gates, states[1], cell.hidden_channels))


def _shapes(cell: nn.Module) -> tuple[list[list], list]:
    """(each state's shape, the projected input's shape), after the batch axis."""
    if isinstance(cell, ConvLSTMCell):  # its input is not projected before the loop
        ch, grid = cell.hidden_channels, ["height", "width"]  # the image size is the model's
        return [[ch, *grid], [ch, *grid]], [cell.in_channels, *grid]
    if not isinstance(cell, (LSTMCell, GRUCell, RNNCell)):
        raise TypeError(f"cell: expected an rnnx LSTM, GRU, RNN or ConvLSTM cell, got {type(cell).__name__}")
    hid = cell.hidden_size
    if isinstance(cell, LSTMCell):
        return [[cell.proj_size or hid], [hid]], [4 * hid]
    return [[hid]], [(3 if isinstance(cell, GRUCell) else 1) * hid]


def _check(cells: list[nn.Module]) -> None:
    for cell in cells:
        if not supports(cell):
            raise TypeError(f"cell: expected one of {', '.join(c.__name__ for c in _CELLS)}, got {type(cell).__name__}")


def stack_scan(
    cells: list[nn.Module], x: str, states: list[str], y: str, new_states: list[str], prefix: str, stacked: bool = True
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Outer-graph nodes that run a stack of cells (layer 0 first) over the time-major ``x``.

    One Scan for the whole stack: the first layer's input projection runs on every step at
    once before it; each later layer projects the layer below's new ``h`` inside the body.

    Args:
        cells: the layers' cells (:func:`supports` accepts each), one direction.
        x: name of the input sequence, time-major: (T, B, ...).
        states: names of the initial states, ``[h]`` or ``[h, c]``: (L, B, ...) each when
            ``stacked``, else (B, ...) (one cell).
        y: name for the output sequence (T, B, ...): every step's ``h`` of the last layer.
        new_states: names for the final states, laid out as ``states``.
        prefix: prefix of every other name (unique per stack in the model).
        stacked: whether the states stack the layers on a leading axis.

    Returns:
        (nodes, initializers) of the outer graph; the recurrent weights (and those of the
        later layers' projections) live inside the Scan body.

    Raises:
        TypeError: a cell is not one :func:`supports` accepts.
        ValueError: several cells with unstacked states.
    """
    _check(cells)
    if not stacked and len(cells) != 1:
        raise ValueError(f"stacked: unstacked states hold one cell, got {len(cells)} cells")
    dtype = _array(next(cells[0].parameters())).dtype
    outer, body = _Graph(prefix, dtype), _Graph(prefix + "step/", dtype)
    xp = _project(cells[0], outer, x)
    xp_t = body.prefix + "x_proj_t"
    body_in, body_out, layer_in = [], [], xp_t
    for layer, cell in enumerate(cells):
        g = body.scoped(f"{body.prefix}l{layer}/")
        state_shapes, proj_shape = _shapes(cell)
        names = [f"{g.prefix}{k}_prev" for k in ("h", "c")[: len(state_shapes)]]
        body_in += list(zip(names, state_shapes))
        projected = layer_in if layer == 0 else _project(cell, g, layer_in)
        new = _step(cell, g, projected, names)
        body_out += list(zip(new, state_shapes))
        layer_in = new[0]  # the next layer reads this layer's h
    y_t = body.op1("Identity", [layer_in], "y_t")  # a scan output distinct from the state output
    elem = helper.np_dtype_to_tensor_dtype(dtype)

    def info(name: str, shape: list) -> onnx.ValueInfoProto:  # shapes set: Scan-11 needs them
        return helper.make_tensor_value_info(name, elem, [BATCH, *shape])

    graph = helper.make_graph(
        body.nodes,
        prefix + "step",
        [info(*v) for v in [*body_in, (xp_t, _shapes(cells[0])[1])]],
        [info(*v) for v in [*body_out, (y_t, _shapes(cells[-1])[0][0])]],
        initializer=body.inits,
    )
    n_kinds = len(states)
    if stacked:  # (L, B, ...) -> one (B, ...) per layer and back
        index = [outer.const(f"layer{i}", np.array(i, np.int64)) for i in range(len(cells))]
        scan_in = [
            outer.op1("Gather", [states[k], index[i]], f"s{k}_l{i}", axis=0)
            for i in range(len(cells))
            for k in range(n_kinds)
        ]
        scan_out = [f"{prefix}s{k}_l{i}_final" for i in range(len(cells)) for k in range(n_kinds)]
    else:
        scan_in, scan_out = list(states), list(new_states)
    nodes = [
        *outer.nodes,
        helper.make_node("Scan", [*scan_in, xp], [*scan_out, y], name=prefix + "scan", body=graph, num_scan_inputs=1),
    ]
    if stacked:
        zero = outer.ints("axis0", [0])
        for k in range(n_kinds):
            finals = [scan_out[i * n_kinds + k] for i in range(len(cells))]
            ups = [f"{f}_1" if len(cells) > 1 else new_states[k] for f in finals]
            nodes += [helper.make_node("Unsqueeze", [f, zero], [u], name=u) for f, u in zip(finals, ups)]
            if len(cells) > 1:
                nodes.append(helper.make_node("Concat", ups, [new_states[k]], name=new_states[k] + "_concat", axis=0))
    return nodes, outer.inits


def cell_scan(
    cell: nn.Module, x: str, states: list[str], y: str, new_states: list[str], prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """:func:`stack_scan` of one cell whose states are (B, ...) (one layer, one direction)."""
    return stack_scan([cell], x, states, y, new_states, prefix, stacked=False)
