"""trace strategy: relu RNNs are refused (the native op's activation is not portable)."""

from __future__ import annotations

import pytest
from torch import nn

from rnnx.exporter import export_onnx
from rnnx.exporter.strategies.trace import refuse_relu_rnn
from tests.zoo import make_model


def test_relu_rnn_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"rnn is nn.RNN\(nonlinearity='relu'\).*tract"):
        refuse_relu_rnn(make_model("rnn-relu"))
    refuse_relu_rnn(make_model("rnn-tanh"))  # tanh: the native op is fine
    refuse_relu_rnn(nn.Sequential(nn.Linear(2, 2)))


def test_relu_rnn_exports_through_scan_with_relu_spelled_out(tmp_path) -> None:
    import onnx

    result = export_onnx(make_model("rnn-relu"), tmp_path / "m.onnx", strategy="scan-legacy")
    graph = onnx.load(str(result.path)).graph
    body = next(a.g for a in graph.node[1].attribute if a.name == "body")
    assert "Relu" in {n.op_type for n in body.node}
    assert "RNN" not in {n.op_type for n in graph.node}
