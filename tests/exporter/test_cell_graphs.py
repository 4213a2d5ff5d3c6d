"""rnnx.exporter.cell_graphs: each cell over a sequence as a hoisted projection + a lean Scan."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from onnx.reference import ReferenceEvaluator

from rnnx.exporter.cell_graphs import cell_scan, stack_scan, supports
from rnnx.models.cells import ConvLSTMCell, GRUCell, LSTMCell, RNNCell
from tests.zoo import PeepholeLSTMCell

CELLS = {  # id -> (cell factory, per-step input shape without batch)
    "lstm": (lambda: LSTMCell(5, 8), (5,)),
    "lstm-proj": (lambda: LSTMCell(5, 8, proj_size=3), (5,)),
    "lstm-nobias": (lambda: LSTMCell(5, 8, bias=False), (5,)),
    "gru": (lambda: GRUCell(5, 8), (5,)),
    "gru-nobias": (lambda: GRUCell(5, 8, bias=False), (5,)),
    "rnn-tanh": (lambda: RNNCell(5, 8), (5,)),
    "rnn-relu": (lambda: RNNCell(5, 8, nonlinearity="relu"), (5,)),
    "convlstm-k3": (lambda: ConvLSTMCell(2, 4, kernel_size=3), (2, 6, 6)),
}
LEAN_BODY_OPS = {"MatMul", "Add", "Split", "Sigmoid", "Tanh", "Relu", "Mul", "Sub", "Identity", "Conv", "Concat"}


def _cell(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    factory, shape = CELLS[name]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return factory().eval(), shape


def _states(cell: torch.nn.Module, batch: int, x_shape: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if isinstance(cell, ConvLSTMCell):
        shape = (batch, cell.hidden_channels, *x_shape[1:])
        return [torch.randn(shape, generator=g), torch.randn(shape, generator=g)]
    h = torch.randn(batch, getattr(cell, "proj_size", 0) or cell.hidden_size, generator=g)
    return [h, torch.randn(batch, cell.hidden_size, generator=g)] if isinstance(cell, LSTMCell) else [h]


def _model(cell: torch.nn.Module, x_shape: tuple[int, ...], opset: int = 17) -> onnx.ModelProto:
    """A graph holding only the cell over a time-major sequence: x, *s -> y, *s_out."""
    states = [tuple(s.shape[1:]) for s in _states(cell, 1, x_shape)]
    ins, outs = [f"s{i}" for i in range(len(states))], [f"s{i}_out" for i in range(len(states))]
    nodes, inits = cell_scan(cell, "x", ins, "y", outs, "cell0/")
    f = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f, ["T", "B", *x_shape])]
    inputs += [helper.make_tensor_value_info(n, f, ["B", *s]) for n, s in zip(ins, states)]
    outputs = [helper.make_tensor_value_info("y", f, ["T", "B", *states[0]])]
    outputs += [helper.make_tensor_value_info(n, f, ["B", *s]) for n, s in zip(outs, states)]
    graph = helper.make_graph(nodes, "cell", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _eager(cell: torch.nn.Module, x: torch.Tensor, states: list[torch.Tensor]) -> list[np.ndarray]:
    ys = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            if len(states) == 2:
                states = list(cell(x[t], (states[0], states[1])))
            else:
                states = [cell(x[t], states[0])]
            ys.append(states[0])
    return [torch.stack(ys).numpy(), *(s.numpy() for s in states)]


def _bodies(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    return [a.g for n in model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]


@pytest.mark.parametrize("steps", [1, 7, 40])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_scan_matches_the_eager_cell(name: str, steps: int) -> None:
    cell, shape = _cell(name)
    x = torch.randn(steps, 3, *shape, generator=torch.Generator().manual_seed(2))  # (T, B, ...)
    states = _states(cell, 3, shape)
    want = _eager(cell, x, states)
    model = _model(cell, shape)
    feeds = {"x": x.numpy(), **{f"s{i}": s.numpy() for i, s in enumerate(states)}}
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    if steps == 7:  # the portable reference runtime agrees too (onnx.reference is slow: one size)
        for a, b in zip(ReferenceEvaluator(model).run(None, feeds), want):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_body_is_lean_and_holds_the_recurrent_weights(name: str) -> None:
    """One matmul (or conv) per recurrent weight, no shape arithmetic; the projection is outside
    (ConvLSTM: one conv over cat([x, h]) per step, as the cell computes it)."""
    cell, _ = _cell(name)
    model = _model(cell, CELLS[name][1])
    (body,) = _bodies(model)
    ops = collections.Counter(n.op_type for n in body.node)
    assert set(ops) <= LEAN_BODY_OPS, ops
    weights = [t for t in body.initializer if len(t.dims) >= 2]
    recurrent = 2 if "proj" in name else 1  # W_hh (and W_hr)
    assert len(weights) == recurrent and ops["MatMul"] + ops["Conv"] == recurrent, ops
    outer = collections.Counter(n.op_type for n in model.graph.node)
    hoisted = 0 if name.startswith("conv") else 1  # W_ih: every step at once
    assert outer["MatMul"] == hoisted and outer["Scan"] == 1 and outer["Conv"] == 0


@pytest.mark.parametrize("opset", [13, 20])
def test_cell_scan_is_valid_at_the_supported_opsets(opset: int) -> None:
    cell, shape = _cell("convlstm-k3")
    model = _model(cell, shape, opset=opset)
    x = np.zeros((2, 1, *shape), np.float32)
    s = np.zeros((1, 4, 6, 6), np.float32)
    y, *_ = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "s0": s, "s1": s}
    )
    assert y.shape == (2, 1, 4, 6, 6)


def test_users_cells_are_not_supported() -> None:
    cell = PeepholeLSTMCell(5, 8)
    assert not supports(cell) and supports(LSTMCell(5, 8))
    with pytest.raises(TypeError, match=r"cell: expected one of LSTMCell, .*, got PeepholeLSTMCell"):
        cell_scan(cell, "x", ["h", "c"], "y", ["h1", "c1"], "p/")


def test_int8_quantizes_the_projection_and_the_recurrent_matmuls(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime.quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cell, shape = _cell("lstm-proj")
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_model(cell, shape), str(src))
    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        extra_options={"EnableSubgraph": True},
    )
    model = onnx.load(str(dst))
    outer = collections.Counter(n.op_type for n in model.graph.node)
    body = collections.Counter(n.op_type for g in _bodies(model) for n in g.node)
    assert outer["MatMulInteger"] == 1 and outer["MatMul"] == 0
    assert body["MatMulInteger"] == 2 and body["MatMul"] == 0  # W_hh and W_hr


STACKS = {  # id -> (two cells, layer 0 first; per-step input shape)
    "lstm-proj": (lambda: [LSTMCell(5, 8, proj_size=3), LSTMCell(3, 8, proj_size=3)], (5,)),
    "gru": (lambda: [GRUCell(5, 8), GRUCell(8, 8)], (5,)),
    "rnn-relu": (lambda: [RNNCell(5, 8, nonlinearity="relu"), RNNCell(8, 8, nonlinearity="relu")], (5,)),
    "convlstm": (lambda: [ConvLSTMCell(2, 4), ConvLSTMCell(4, 4)], (2, 6, 6)),
}


@pytest.mark.parametrize("steps", [1, 9])
@pytest.mark.parametrize("name", sorted(STACKS))
def test_stack_scan_runs_every_layer_in_one_scan_like_the_eager_stack(name: str, steps: int) -> None:
    factory, shape = STACKS[name]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cells = [c.eval() for c in factory()]
    per_layer = [_states(c, 2, shape) for c in cells]
    stacked = [torch.stack([s[k] for s in per_layer]) for k in range(len(per_layer[0]))]  # (L, B, ...)
    x = torch.randn(steps, 2, *shape, generator=torch.Generator().manual_seed(3))
    seq, finals = x, []
    for cell, states in zip(cells, per_layer):
        seq, *new = _eager(cell, seq, states)
        seq = torch.from_numpy(seq)
        finals.append(new)
    want = [seq.numpy(), *(np.stack([f[k] for f in finals]) for k in range(len(stacked)))]
    ins, outs = [f"s{i}" for i in range(len(stacked))], [f"s{i}_out" for i in range(len(stacked))]
    nodes, inits = stack_scan(cells, "x", ins, "y", outs, "stack/")
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "stack",
        [helper.make_tensor_value_info(n, f, None) for n in ["x", *ins]],
        [helper.make_tensor_value_info(n, f, None) for n in ["y", *outs]],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert [n.op_type for n in model.graph.node].count("Scan") == 1
    feeds = {"x": x.numpy(), **{n: s.numpy() for n, s in zip(ins, stacked)}}
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    if steps == 9:  # the portable reference runtime agrees too
        got += ReferenceEvaluator(model).run(None, feeds)
    for a, b in zip(got, want * (len(got) // len(want))):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_unstacked_states_hold_one_cell() -> None:
    with pytest.raises(ValueError, match=r"stacked: unstacked states hold one cell, got 2 cells"):
        stack_scan([RNNCell(5, 8), RNNCell(8, 8)], "x", ["h"], "y", ["h1"], "p/", stacked=False)
