"""ort_worker: graphs run in a child process; a crash there is an error here, not our death."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnx.onnx_tools.ort_worker import WorkerDied, isolated_runner


def _gru_graph() -> bytes:
    """x (T, B, 3), h (1, B, 4) -> y (T, 1, B, 4), h': a bare ONNX GRU node."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((1, 12, n)).astype(np.float32), name)
        for name, n in (("W", 3), ("R", 4))
    ]
    node = helper.make_node("GRU", ["x", "W", "R", "", "", "h"], ["y", "h_out"], hidden_size=4)
    graph = helper.make_graph(
        [node],
        "gru",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", 3]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "B", 4]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, None),
        ],
        initializer=weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_runs_the_graph_and_returns_every_output() -> None:
    with isolated_runner(_gru_graph(), ["x", "h"], ["y", "h_out"]) as run:
        y, (h,) = run(np.ones((2, 1, 3), np.float32), [np.zeros((1, 1, 4), np.float32)])
    assert y.shape == (2, 1, 1, 4) and h.shape == (1, 1, 4)
    np.testing.assert_array_equal(y[-1], h)


def test_an_ordinary_onnxruntime_error_is_raised_and_the_worker_keeps_serving() -> None:
    with isolated_runner(_gru_graph(), ["x", "h"], ["y", "h_out"]) as run:
        with pytest.raises(RuntimeError, match="InvalidArgument|Invalid|Got invalid dimensions"):
            run(np.ones((2, 1, 5), np.float32), [np.zeros((1, 1, 4), np.float32)])  # 5 features
        y, _ = run(np.ones((2, 1, 3), np.float32), [np.zeros((1, 1, 4), np.float32)])
    assert y.shape == (2, 1, 1, 4)


def test_a_graph_that_crashes_onnxruntime_raises_and_a_fresh_worker_follows() -> None:
    with isolated_runner(_gru_graph(), ["x", "h"], ["y", "h_out"]) as run:
        with pytest.raises(WorkerDied, match=r"onnxruntime crashed \((signal SIG\w+|exit code -?\d+)\)"):
            run(np.ones((0, 1, 3), np.float32), [np.zeros((1, 1, 4), np.float32)])  # empty sequence
        with pytest.raises(WorkerDied):  # dead stays dead
            run(np.ones((2, 1, 3), np.float32), [np.zeros((1, 1, 4), np.float32)])
    with isolated_runner(_gru_graph(), ["x", "h"], ["y", "h_out"]) as run:
        y, _ = run(np.ones((2, 1, 3), np.float32), [np.zeros((1, 1, 4), np.float32)])
    assert y.shape == (2, 1, 1, 4)
