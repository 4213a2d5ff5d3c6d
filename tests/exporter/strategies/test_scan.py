"""scan strategies: time-major wrapping, opset relabelling of dynamo step graphs."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from rnnx.exporter.strategies.scan import inverse_perm, time_major_perm
from rnnx.onnx_tools.graph import to_opset


@pytest.mark.parametrize("rank,axis,perm", [(3, 1, [1, 0, 2]), (5, 1, [1, 0, 2, 3, 4]), (3, 0, [0, 1, 2])])
def test_time_major_perm_and_its_inverse(rank: int, axis: int, perm: list[int]) -> None:
    assert time_major_perm(rank, axis) == perm
    x = np.zeros(tuple(range(2, 2 + rank)))
    assert x.transpose(perm).transpose(inverse_perm(perm)).shape == x.shape


def _split18() -> onnx.ModelProto:
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [
            helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2, name="split"),
            helper.make_node("Sigmoid", ["a"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", f, ["batch", 8])],
        [helper.make_tensor_value_info("y", f, ["batch", 4]), helper.make_tensor_value_info("b", f, ["batch", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def test_split_num_outputs_gets_explicit_sizes_at_opset_17() -> None:
    model = to_opset(_split18(), 17)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    x = np.arange(16, dtype=np.float32).reshape(2, 8)
    y, b = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(b, x[:, 4:])
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-x[:, :4])), rtol=1e-6)


def test_ops_changed_after_the_target_opset_are_refused() -> None:
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x", "axes"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", f, [2, 3])],
        [helper.make_tensor_value_info("y", f, None)],
        initializer=[helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    with pytest.raises(ValueError, match=r"uses ReduceMean, changed after opset 17; export with opset >= 18"):
        to_opset(model, 17)
    assert to_opset(model, 18) is model


def _scans(path) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "Scan"]


LEAN = {"MatMul", "Add", "Split", "Sigmoid", "Tanh", "Mul", "Identity", "Conv", "Concat"}


@pytest.mark.parametrize("name,layers", [("lstm-2l", 2), ("lstm-2l-proj", 2), ("convlstm-k3", 1)])
def test_a_layer_stack_gets_one_lean_scan_with_the_first_projection_hoisted(exported, name: str, layers: int) -> None:
    _, result = exported(name, "onnx", strategy="scan")
    graph = onnx.load(str(result.path)).graph
    (scan,) = _scans(result.path)
    assert result.strategy == "scan" and len(scan.input) == 1 + 2 * layers  # h, c per layer, x
    body = next(a.g for a in scan.attribute if a.name == "body")
    ops = collections.Counter(n.op_type for n in body.node)
    assert set(ops) <= LEAN, ops  # no shape arithmetic per step
    # per layer one recurrent product, per later layer one input projection (+ proj_size's W_hr)
    assert ops["MatMul"] + ops["Conv"] == (2 * layers - 1) + ("proj" in name) * layers, ops
    # the scanned input is the first layer's input projection of every step, made before the Scan
    # (ConvLSTM: x itself, time-major)
    producers = {o: n for n in graph.node for o in n.output}
    assert producers[scan.input[-1]].op_type == ("Transpose" if name.startswith("conv") else "Add")


def test_a_users_own_cell_gets_one_scan_over_its_whole_step(exported) -> None:
    _, result = exported("custom-peephole", "onnx")
    (scan,) = _scans(result.path)
    assert result.strategy == "scan" and list(scan.input) == [s.input for s in result.spec.state] + ["x_time_major"]
