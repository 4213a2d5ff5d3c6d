"""describe: a JSON-serialisable description of any ONNX file or an rnnx TorchScript file."""

from __future__ import annotations

import json

import pytest
import torch

from rnnx.onnx_tools.describe import describe, guess_state_pairs
from tests.foreign import PlainRNN, export_lstm_with_state, export_plain


def test_onnx_and_torchscript_describe_the_same_contract(exported) -> None:
    onnx_info = describe(exported("convlstm-k3", "onnx")[1].path)
    ts_info = describe(exported("convlstm-k3", "torchscript")[1].path)
    assert json.loads(json.dumps(onnx_info)) == onnx_info
    assert onnx_info["inputs"] == ts_info["inputs"] and onnx_info["outputs"] == ts_info["outputs"]
    assert onnx_info["inputs"][0] == {"name": "x", "shape": ["batch", "time", 2, 6, 6], "dtype": "float32"}
    assert (onnx_info["format"], ts_info["format"]) == ("onnx", "torchscript")
    assert onnx_info["exporter"] == "scan" and ts_info["opset"] is None
    assert onnx_info["spec"]["state"] == ts_info["spec"]["state"] and onnx_info["rnnx_spec"] is True
    (scan,) = [r for r in onnx_info["recurrent"] if r["op"] == "Scan"]  # the one layer's time loop
    assert len(scan["carried"]) == len(scan["carried_out"]) == 2  # h and c


# ---------------------------------------------------------------- ONNX files rnnx did not write


def test_foreign_lstm_with_state_io(tmp_path) -> None:
    info = describe(export_lstm_with_state(tmp_path / "ls.onnx"))
    assert info["rnnx_spec"] is False and info["kind"] is None and info["streamable"] is None
    assert info["inputs"][0] == {"name": "frames", "shape": ["batch", "time", 3], "dtype": "float32"}
    assert info["opset"] >= 17 and info["ops"]["LSTM"] == 1 and info["producer"].startswith("pytorch")
    (lstm,) = info["recurrent"]
    assert (lstm["op"], lstm["hidden_size"], lstm["direction"], lstm["layout"]) == ("LSTM", 4, "forward", 0)
    assert [(s["state"], s["source"], s["source_inputs"], s["exposed_as"]) for s in lstm["states"]] == [
        ("h", "graph input", ["h0"], ["hn"]),
        ("c", "graph input", ["c0"], ["cn"]),
    ]
    assert info["state_guess"] == [
        {"input": "h0", "output": "hn", "by": "name"},
        {"input": "c0", "output": "cn", "by": "name"},
    ]
    assert json.loads(json.dumps(info)) == info


def test_foreign_lstm_keeping_its_state_inside(tmp_path) -> None:
    path = export_plain(PlainRNN("gru", layers=2), (torch.zeros(2, 5, 3),), tmp_path / "g.onnx", dynamo=False)
    info = describe(path)
    assert [r["op"] for r in info["recurrent"]] == ["GRU", "GRU"] and info["state_guess"] == []
    assert all(s["source"] == "zeros" and s["exposed_as"] == [] for r in info["recurrent"] for s in r["states"])


@pytest.mark.parametrize(
    "ins,outs,want",
    [
        (["x", "state"], ["y", "stateN"], [("state", "stateN", "name")]),
        (["x", "h_in", "c_in"], ["y", "h_out", "c_out"], [("h_in", "h_out", "name"), ("c_in", "c_out", "name")]),
        (["x", "past_k"], ["logits", "present_k"], [("past_k", "present_k", "name")]),
        (["x", "mem"], ["y", "mem2"], [("mem", "mem2", "shape")]),
        (["x", "a", "b"], ["y", "p", "q"], []),  # equal shapes everywhere: no unique match, no guess
    ],
    ids=["stateN", "in-out", "past-present", "by-shape", "ambiguous"],
)
def test_guess_state_pairs(ins, outs, want) -> None:
    def io(name: str) -> dict:
        return {"name": name, "shape": ["batch", 5] if name in "xy" else [2, "batch", 8], "dtype": "float32"}

    got = guess_state_pairs([io(n) for n in ins], [io(n) for n in outs])
    assert [(g["input"], g["output"], g["by"]) for g in got] == want
