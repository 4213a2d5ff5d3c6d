"""describe: a JSON-serialisable description of an exported file."""

from __future__ import annotations

import json

from rnnx.exporter.describe import describe


def test_onnx_and_torchscript_describe_the_same_contract(exported) -> None:
    onnx_info = describe(exported("convlstm-k3", "onnx")[1].path)
    ts_info = describe(exported("convlstm-k3", "torchscript")[1].path)
    assert json.loads(json.dumps(onnx_info)) == onnx_info
    assert onnx_info["inputs"] == ts_info["inputs"] and onnx_info["outputs"] == ts_info["outputs"]
    assert onnx_info["inputs"][0] == {"name": "x", "shape": ["batch", "time", 2, 6, 6], "dtype": "float32"}
    assert (onnx_info["format"], ts_info["format"]) == ("onnx", "torchscript")
    assert onnx_info["exporter"] == "scan" and ts_info["opset"] is None
